"""`hpo sweep [overrides]`: run a sweep."""

from __future__ import annotations

import argparse
import sys

NAME = "sweep"
HELP = "run a sweep (Hydra overrides after the command)"


def config_help() -> str:
    """The config groups with their options, and the top-level keys, read from hpo's conf/."""
    from omegaconf import OmegaConf

    from hpo.config.compose import conf_dir

    conf = conf_dir()
    lines = ["config groups (GROUP=OPTION; add your own with --config-dir DIR):"]
    for group in sorted(p for p in conf.iterdir() if p.is_dir()):
        options = sorted(f.stem for f in group.glob("*.yaml"))
        lines.append(f"  {group.name:<13} {', '.join(options)}")
    top = OmegaConf.load(conf / "config.yaml")
    keys = [k for k in top if k != "defaults"]
    lines.append("top-level keys (KEY=VALUE, KEY.SUBKEY=VALUE; `--cfg job` prints them all):")
    lines.append("  " + ", ".join(keys))
    lines.append(
        "sweep a key: 'optim.lr=tag(log, interval(1e-4, 1e-2))', 'model.hidden_dim=choice(64,128)'"
    )
    lines.append("run directory: run_dir=DIR (or hydra.run.dir=DIR); README: Config reference")
    return "\n".join(lines)


CONFIG_HELP = "(the config groups and top-level keys, read when help is printed)"


class ConfigHelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Reads conf/ for the epilog only when help is printed, so that every other `hpo`
    call skips importing Hydra for it."""

    def add_text(self, text):
        super().add_text(config_help() if text is CONFIG_HELP else text)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.formatter_class = ConfigHelpFormatter
    parser.epilog = CONFIG_HELP
    parser.add_argument(
        "--cfg", choices=["job"], help="print the composed config (with the search space) and exit"
    )
    parser.add_argument(
        "--config-dir",
        help="a directory of config groups put ahead of hpo's own conf/ on the search path",
    )
    parser.add_argument(
        "overrides",
        nargs="*",
        help="Hydra overrides, e.g. data=wine 'optim.lr=tag(log, interval(1e-4,1e-2))'",
    )


def _check_run_location(cfg) -> None:
    """A local ``run_dir`` or ``output_dir`` that cannot be made: its one-line error now,
    before the sweep machinery's import (hpo.paths.check_creatable_dir)."""
    from hpo.paths import check_creatable_dir
    from hpo.sweep.storage import is_uri

    key = "run_dir" if cfg.get("run_dir") else "output_dir"
    if not is_uri(cfg[key]):
        check_creatable_dir(cfg[key], f"config key `{key}`")


def run(args: argparse.Namespace) -> int:
    from omegaconf import OmegaConf

    from hpo.config import compose_config

    cfg, _ = compose_config(args.overrides, args.config_dir)
    if args.cfg == "job":
        print(OmegaConf.to_yaml(cfg, resolve=True), end="")
        return 0
    from hpo.data.locations import check_configured_file
    from hpo.loopback import keep_embedded_ray_on_loopback

    _check_run_location(cfg)
    check_configured_file(cfg)  # a missing data file: its error in a second, not twenty
    keep_embedded_ray_on_loopback(cfg.cluster.address)  # before Ray is imported
    from hpo.sweep import run_sweep
    from hpo.sweep.resources import check_local_resources

    check_local_resources(cfg)  # before run_sweep writes the run directory
    # The current stdout, not one bound when hpo.sweep was imported (Tune pickles it).
    return export_and_summarize(run_sweep(cfg, stream=sys.stdout), cfg)


def export_and_summarize(result, cfg) -> int:
    """Export the best trial into RUN_DIR/best and print the summary (sweep and resume),
    then release the run directory's claim (hpo.sweep.lock) that the sweep took."""
    from hpo.sweep.lock import release_run_dir

    try:
        return _export_and_summarize(result, cfg)
    finally:
        release_run_dir(result.run_dir)


def _export_and_summarize(result, cfg) -> int:
    from hpo.errors import HPOError
    from hpo.export.pipeline import export_best
    from hpo.export.staging import ExportInterrupted
    from hpo.paths import os_error_line
    from hpo.sweep.mlflow_tracking import log_export
    from hpo.sweep.storage import upload_results
    from hpo.sweep.summary import print_summary
    from hpo.train.trial import engine_name

    if result.best is None:
        print_summary(result, cfg)
        return 0
    export = export_best
    if engine_name(cfg) == "lightning":  # lightning is imported on this path only
        from hpo.export.lightning_export import export_lightning_best as export
    try:
        exported = export(result.run_dir, result.prepared, sweep_wall_s=result.wall_s)
    except KeyboardInterrupt:  # best/ is untouched (hpo.export.staging)
        raise ExportInterrupted(result.extra.get("storage", str(result.run_dir))) from None
    except OSError as exc:  # a full disk, say; best/ is untouched
        print_summary(result, cfg)
        raise HPOError(
            f"the export failed: {os_error_line(exc)} best/ is unchanged; export again with "
            f"`hpo resume {result.run_dir}`."
        ) from exc
    except Exception:
        print_summary(result, cfg)  # the sweep's results stand even if the export fails
        raise
    log_export(result.run_dir, exported)  # tracking=mlflow: onto the sweep's parent run
    # A run stored at a URI (s3://...) gets best/ there too, not only in local staging.
    upload_results(result.run_dir, result.extra.get("storage", str(result.run_dir)))
    print_summary(result, cfg, exported=exported)
    return 0
