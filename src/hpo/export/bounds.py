"""Sizes read from preprocessing.json are checked against the model itself before
anything is allocated: a crafted file (a one-hot width of 3e7 in 8 KB of JSON) must not
make `hpo predict` allocate gigabytes.

Every model input's declared width (the columns its blocks produce, or the layout width
of an ensemble's fold-model) must equal the width of the ONNX graph's input of that
name, and every one-hot width and position must fit inside it.
"""

from __future__ import annotations

from typing import Any

from hpo.errors import DataError

MAX_WIDTH = 1_000_000  # features per model input; far above any exported table's


FIX = "export the model again (the file was changed or is not this model's)"


def _block_width(block: dict[str, Any], limit: int, where: str) -> int:
    if block["kind"] == "numeric":
        return len(block["kept"]) + len(block.get("indicator") or [])
    width = 0
    for encoding in block["encodings"]:
        if encoding["kind"] != "onehot":
            width += 1
            continue
        size = int(encoding["width"])
        codes = [int(c) for c in encoding["codes"].values()]
        if not 0 < size <= limit or any(not 0 <= c < size for c in codes):
            raise DataError(f"{where}: a one-hot width of {size} does not fit the model; {FIX}.")
        width += size
    return width


def check_sizes(preprocessing: dict[str, Any], onnx_widths: dict[str, Any], path: str) -> None:
    """Refuse preprocessing whose sizes disagree with the ONNX graph's inputs.

    Args:
        preprocessing: the parsed preprocessing.json.
        onnx_widths: input name -> its feature width in the ONNX graph.
        path: the file, for the message.

    Raises:
        DataError: naming the input, the sizes and the fix.
    """
    fix = FIX
    for spec in preprocessing.get("inputs", []):
        name = spec.get("name")
        width = onnx_widths.get(name)
        if not isinstance(width, int) or not 0 < width <= MAX_WIDTH:
            raise DataError(f"{path}: input {name!r} has no fixed width in the ONNX graph; {fix}.")
        where = f"{path}: input {name!r}"
        produced = sum(_block_width(b, width, where) for b in spec["blocks"])
        declared = produced
        if spec.get("positions") is not None:
            declared = int(spec["width"])
            positions = [int(p) for p in spec["positions"]]
            if len(positions) != produced or any(not 0 <= p < width for p in positions):
                raise DataError(f"{where}: its positions do not fit the model; {fix}.")
        if declared != width:
            raise DataError(
                f"{where} declares {declared} features, the ONNX graph takes {width}; {fix}."
            )
