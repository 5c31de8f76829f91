"""Named arrays found in a file, matched to the roles image / text / labels by liberal name lists.

Every foreign format (MAT files, pickles) is read into :class:`Variable` objects first, so the
rules for "which variable is the image matrix", "is it usable" and "do the counts agree" live
here once and every format gives the same error messages, naming the file and the variable.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterable

import numpy as np

from cmhash.data.dataset import CrossModalDataset, DataError

ROLES = ("image", "text", "labels")

#: Accepted variable names per role, matched case-insensitively, earlier names preferred.
#: ``IAll`` precedes ``FAll`` because DCMH releases use FAll for image file names; ``index`` and
#: ``caption`` are the DCHMT/DSPH/MITH names, ``category`` their label name.
ROLE_NAMES: dict[str, tuple[str, ...]] = {
    "image": ("IAll", "FAll", "I", "image", "images", "img", "imgs", "X", "index"),
    "text": ("YAll", "TAll", "T", "text", "texts", "txt", "tag", "tags", "Y", "caption", "captions"),
    "labels": ("LAll", "L", "label", "labels", "category"),
}

ENCODE_HINT = ("turn raw images/captions into feature vectors first with `cmhash encode` (for these files: "
               "`cmhash encode --from dchmt DIR --image-root ROOT` or `--from dcmh PATH`; see docs/datasets.md)")


@dataclass(frozen=True)
class Variable:
    """One named array in a file, described before it is read (MAT files can hold gigabytes).

    ``shape`` is the shape as the producing tool shows it (MATLAB's rows x columns), ``kind`` is
    ``"numeric"``, ``"text"`` (strings, MATLAB char/cell arrays) or ``"other"`` (structs, objects).
    """

    source: str
    name: str
    shape: tuple[int, ...]
    kind: str
    read: Callable[[], np.ndarray]

    def unfit(self) -> str | None:
        """Why this variable cannot be an items x dims matrix, or None when it can."""
        if self.kind == "text":
            return f"holds text (file paths or raw captions?), not feature vectors; {ENCODE_HINT}"
        if self.kind != "numeric":
            return "is not a numeric array (a struct or object?)"
        if len(self.shape) > 2:
            return (f"is a {'x'.join(map(str, self.shape))} array (raw images?), "
                    f"not an items x dims feature matrix; {ENCODE_HINT}")
        if len(self.shape) < 2:
            return f"is a vector of shape {self.shape}, not an items x dims matrix"
        return None


def pick(role: str, variables: Iterable[Variable], *, where: str) -> Variable:
    """The variable playing ``role``: the first usable one in :data:`ROLE_NAMES` order.

    Raises a :class:`DataError` when no name matches (listing what was found), when the
    matching variables are all unusable (saying why), or when the best name occurs in two files.
    """
    variables = list(variables)
    by_name: dict[str, list[Variable]] = {}
    for var in variables:
        by_name.setdefault(var.name.lower(), []).append(var)
    matches = [by_name[n.lower()] for n in ROLE_NAMES[role] if n.lower() in by_name]
    if not matches:
        found = sorted({v.name for v in variables}) or ["nothing"]
        raise DataError(f"missing variable: no {role} matrix (looked for {', '.join(ROLE_NAMES[role])}; "
                        f"found {', '.join(found)})", source=where, field=role)
    for group in matches:
        usable = [v for v in group if v.unfit() is None]
        if len(usable) > 1:
            raise DataError(f"ambiguous {role}: variable {usable[0].name!r} occurs in "
                            f"{', '.join(v.source for v in usable)}", source=where, field=role)
        if usable:
            return usable[0]
    first = matches[0][0]
    raise DataError(f"{role} variable {first.unfit()}", source=first.source, field=first.name)


def build(chosen: dict[str, Variable], *, name: str, source: str) -> CrossModalDataset:
    """Read the chosen variables into a validated dataset; errors name the file and variable."""
    arrays = {role: var.read() for role, var in chosen.items()}
    n = len(arrays["image"])
    odd = next((role for role, a in arrays.items() if len(a) != n), None)
    if odd is not None:
        detail = ", ".join(f"{role} {var.name!r} in {var.source} has {len(arrays[role])}" for role, var in chosen.items())
        flipped = arrays[odd].ndim == 2 and arrays[odd].shape[1] == n
        hint = f" (is {chosen[odd].name!r} stored transposed?)" if flipped else ""
        raise DataError(f"modality/label counts differ: {detail} rows{hint}",
                        source=chosen[odd].source, field=chosen[odd].name)
    try:
        return CrossModalDataset(arrays["image"], arrays["text"], arrays["labels"], name=name, source=source)
    except DataError as exc:
        var = chosen.get(exc.field or "")
        if var is None:
            raise
        raise DataError(exc.problem, source=var.source, field=var.name) from exc


def stack(parts: list[CrossModalDataset], *, name: str, source: str) -> tuple[CrossModalDataset, list[np.ndarray]]:
    """Parts one under another as one dataset, with the row range each part landed in."""
    for part in parts[1:]:
        if part.dims != parts[0].dims or part.num_labels != parts[0].num_labels:
            raise DataError(f"parts disagree: {part.source} has dims {part.dims} and {part.num_labels} labels, "
                            f"{parts[0].source} has {parts[0].dims} and {parts[0].num_labels}",
                            source=part.source)
    stacked = CrossModalDataset(np.concatenate([p.image for p in parts]), np.concatenate([p.text for p in parts]),
                                np.concatenate([p.labels for p in parts]), name=name, source=source)
    ends = np.cumsum([0] + [len(p) for p in parts])
    return stacked, [np.arange(a, b, dtype=np.int64) for a, b in zip(ends[:-1], ends[1:])]
