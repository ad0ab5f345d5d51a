"""Structured-config schemas. The composed config is merged into these, so a wrong key
or type fails before Ray starts, naming the key."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Optional

from hydra.core.config_store import ConfigStore


@dataclass
class DataConfig:
    name: str = "digits"
    source: str = "builtin"  # builtin | csv | parquet
    task: str = "auto"  # auto | classification | regression
    path: Optional[str] = None
    target: Optional[str] = None
    columns: Optional[list[str]] = None
    drop_columns: list[str] = field(default_factory=list)
    group_column: Optional[str] = None
    na_values: list[str] = field(
        default_factory=lambda: ["", "NA", "N/A", "NaN", "nan", "null", "NULL", "None", "?"]
    )
    drop_duplicates: Any = "auto"  # auto | true | false (hpo.data.duplicates)
    drop_id_columns: bool = True
    scaling: str = "standard"  # standard | robust | minmax | none
    encoding: str = "onehot"  # onehot | ordinal
    max_categories: int = 50
    delimiter: str = ","  # CSV field separator ("tab" or \t: a tab)
    file_encoding: str = "utf-8"  # CSV text encoding, any Python codec name
    skip_rows: int = 0  # CSV lines before the header
    normalize_categories: bool = True  # strip spaces and fold case in category values
    max_stray_fraction: float = 0.05  # text values a numeric column may hold (coerced)
    leakage_threshold: float = 0.98  # one column's score that flags probable leakage
    target_transform: str = "auto"  # auto | none | log | log1p (hpo.data.target_transform)


@dataclass
class SearcherConfig:
    name: str = "tpe"  # tpe | random | grid | gp | cmaes | nsga2
    n_startup_trials: int = 8
    multivariate: bool = True
    constant_liar: Any = "auto"  # auto | true | false
    bridge: str = "fidelity"  # fidelity (hpo's study searcher) | stock (Ray's OptunaSearch)
    # What the sampler learns from a scheduler-stopped trial (hpo.sweep.optuna_bridge):
    # pruned (TPE; CMA-ES with consider_pruned_trials) | imputed (COMPLETE, for GP)
    stopped_as: str = "pruned"
    population_size: int = 50  # nsga2: trials per generation
    crossover_prob: float = 0.9  # nsga2: chance a child mixes two parents' parameters


@dataclass
class ObjectiveConfig:
    """One objective of a multi-objective sweep (hpo.config.objectives)."""

    metric: str = "val_loss"
    mode: str = "min"


@dataclass
class SchedulerConfig:
    name: str = "asha"  # asha | hyperband | bohb | median | pbt | fifo
    grace_period: int = 2
    reduction_factor: int = 3
    max_t: int = 30
    brackets: int = 1  # hyperband: asynchronous brackets (asha: always 1)
    min_samples: int = 3  # median: trials that must have reached an epoch to judge there
    perturbation_interval: int = 2  # pbt: epochs between exploit/explore steps
    quantile_fraction: float = 0.25  # pbt: the bottom fraction that copies the top one
    resample_probability: float = 0.25  # pbt: explore by resampling, not perturbing
    racing: bool = False  # fold racing around any scheduler (hpo.sweep.racing)
    racing_alpha: float = 0.05  # the one-sided paired t-test's level
    racing_min_epoch: int = 1  # the first epoch at which a trial can be raced out


@dataclass
class ClusterConfig:
    name: str = "local"
    address: Optional[str] = None  # null: embedded Ray; "auto": the cluster this runs on
    num_cpus: Optional[int] = None
    num_gpus: Optional[int] = None
    # Nodes an autoscaler can still add, e.g. [{CPU: 8, GPU: 1}]: a trial that fits one
    # passes the resource check before such a node runs.
    node_types: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class TrackingConfig:
    name: str = "none"  # none | mlflow (hpo.sweep.mlflow_tracking)
    uri: Optional[str] = None  # null: sqlite:///RUN_DIR/mlflow.db; or any MLflow tracking URI
    experiment: Optional[str] = None  # null: the config's `name`


@dataclass
class BudgetConfig:
    num_samples: int = 40
    max_concurrent_trials: Optional[int] = None
    time_budget_s: Optional[float] = None
    max_failure_rate: float = 0.5
    max_retries: int = 1


@dataclass
class CVConfig:
    folds: int = 5
    strategy: str = "auto"  # auto | stratified | kfold | group
    shuffle: bool = True


@dataclass
class TrainerConfig:
    max_epochs: int = 30
    patience: int = 5
    min_delta: float = 0.0
    # a validation loss this many times that of ignoring the inputs fails the trial as
    # diverged (hpo.train.divergence); null: off
    divergence_factor: Optional[float] = 10.0
    batch_size: int = 64
    gradient_clip_val: Optional[float] = None
    checkpoint_every: int = 1
    # the least seconds between two checkpoints of a trial (its last epoch always
    # checkpoints); 0: every checkpoint_every epochs. PBT always checkpoints on schedule.
    checkpoint_interval_s: float = 5.0
    # the longest a trial's epoch results wait on its worker before they go to the driver
    # together (hpo.sweep.buffering: the scheduler's epochs never wait); 0: every epoch
    # waits for the driver, as Ray Tune's function trainables do
    result_buffer_s: float = 1.0
    # lightning.Trainer arguments for the Lightning path (data=lightning); None: Lightning's
    # default. The tabular engine has no Trainer and refuses them (hpo.config.compose).
    accelerator: Optional[str] = None
    precision: Optional[Any] = None
    accumulate_grad_batches: Optional[int] = None
    gradient_clip_algorithm: Optional[str] = None
    deterministic: Optional[Any] = None
    benchmark: Optional[bool] = None
    limit_train_batches: Optional[Any] = None
    limit_val_batches: Optional[Any] = None
    log_every_n_steps: Optional[int] = None
    callbacks: list[Any] = field(default_factory=list)
    logger: Optional[Any] = None
    kwargs: dict[str, Any] = field(default_factory=dict)


# The TrainerConfig keys that are lightning.Trainer arguments (the Lightning path only).
LIGHTNING_TRAINER_KEYS = (
    "accelerator",
    "precision",
    "accumulate_grad_batches",
    "gradient_clip_algorithm",
    "deterministic",
    "benchmark",
    "limit_train_batches",
    "limit_val_batches",
    "log_every_n_steps",
    "callbacks",
    "logger",
    "kwargs",
)


@dataclass
class OptimConfig:
    lr: float = 1e-3
    weight_decay: float = 1e-4
    label_smoothing: float = 0.0


@dataclass
class ResourcesConfig:
    cpus_per_trial: float = 1
    gpus_per_trial: float = 0


class Activation(str, Enum):
    """The built-in MLP's activations (hpo.models.mlp.ACTIVATIONS maps them to layers):
    a value outside these fails at composition, naming `model.activation`."""

    relu = "relu"
    gelu = "gelu"
    silu = "silu"
    tanh = "tanh"
    leaky_relu = "leaky_relu"


@dataclass
class MLPConfig:
    """Schema of the built-in model; user modules (other `_target_`) are free-form."""

    _target_: str = "hpo.models.mlp.TabularMLP"
    name: str = "mlp"
    hidden_dim: int = 128
    num_layers: int = 2
    dropout: float = 0.1
    activation: Activation = Activation.relu
    batch_norm: bool = False


@dataclass
class HPOConfig:
    name: str = "default"
    output_dir: str = "runs"  # a path (shared by all nodes on a cluster) or a URI (s3://...)
    run_dir: Optional[str] = None  # null: output_dir/name/<time>
    seed: int = 0
    # One metric and mode, or lists of them: metric=[val_accuracy,latency_ms] mode=[max,min]
    # (hpo.config.objectives turns lists into `objectives`, the first kept in metric/mode).
    metric: Any = "val_loss"
    mode: Any = "min"
    objectives: list[ObjectiveConfig] = field(default_factory=list)  # derived; empty: one
    test_size: float = 0.2
    # A table source (builtin | csv | parquet) is checked against DataConfig; a DataModule
    # (source: lightning) is free-form: its keys are its constructor's (hpo.config.compose).
    data: dict[str, Any] = field(default_factory=lambda: {"name": "digits", "source": "builtin"})
    model: dict[str, Any] = field(default_factory=dict)
    search_space: dict[str, Any] = field(default_factory=dict)
    searcher: SearcherConfig = field(default_factory=SearcherConfig)
    scheduler: SchedulerConfig = field(default_factory=SchedulerConfig)
    cluster: ClusterConfig = field(default_factory=ClusterConfig)
    tracking: TrackingConfig = field(default_factory=TrackingConfig)
    budget: BudgetConfig = field(default_factory=BudgetConfig)
    cv: CVConfig = field(default_factory=CVConfig)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    resources: ResourcesConfig = field(default_factory=ResourcesConfig)
    # Sections that later layers add (export, ...) are free-form here and checked there.
    export: dict[str, Any] = field(default_factory=dict)


def register_schemas() -> None:
    """Put the schemas into Hydra's ConfigStore (group `schema`), as Hydra apps do."""
    cs = ConfigStore.instance()
    cs.store(group="schema", name="hpo", node=HPOConfig)
    cs.store(group="schema", name="mlp", node=MLPConfig)
