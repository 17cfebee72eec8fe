"""Layer maps: which teacher layers feed each student layer (pure functions).

A map is one tuple of teacher layers per student layer; a student layer takes the
element-wise mean of its teacher layers' module tensors (a single layer: a plain copy).

Groups: teacher layers are split into ``S`` contiguous groups
``[floor(i*T/S), floor((i+1)*T/S))``. With an integral ratio ``k = T/S`` group ``i`` is
``i*k .. i*k+k-1`` as in the paper; otherwise groups differ in size by at most one.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from peftport.errors import LayerMapError


@dataclass(frozen=True)
class LayerMap:
    """A named layer map: ``sources[i]`` are the teacher layers for student layer ``i``."""

    method: str
    sources: tuple[tuple[int, ...], ...]

    @property
    def num_student_layers(self) -> int:
        """Number of student layers the map covers."""
        return len(self.sources)

    def describe(self) -> str:
        """Compact text form, e.g. ``0+1,2+3``; parsable by :func:`explicit_map`."""
        return ",".join("+".join(str(t) for t in group) for group in self.sources)


def _check_sizes(teacher_layers: int, student_layers: int, method: str) -> None:
    if teacher_layers < 1 or student_layers < 1:
        raise LayerMapError(f"layer counts must be positive (teacher {teacher_layers}, student {student_layers})")
    if student_layers > teacher_layers:
        raise LayerMapError(
            f"the student has more layers ({student_layers}) than the teacher ({teacher_layers}); "
            f"'{method}' needs a smaller student: give an explicit map such as '0,0,1,1'"
        )


def groups(teacher_layers: int, student_layers: int) -> list[list[int]]:
    """Contiguous, nearly equal groups of teacher layers, one per student layer.

    >>> groups(6, 3)
    [[0, 1], [2, 3], [4, 5]]
    >>> groups(5, 2)
    [[0, 1], [2, 3, 4]]
    """
    _check_sizes(teacher_layers, student_layers, "groups")
    bounds = [i * teacher_layers // student_layers for i in range(student_layers + 1)]
    return [list(range(bounds[i], bounds[i + 1])) for i in range(student_layers)]


def skip_map(teacher_layers: int, student_layers: int) -> LayerMap:
    """SKIP: student layer ``i`` takes the first layer of its group (``i*k`` when integral).

    >>> skip_map(12, 6).describe()
    '0,2,4,6,8,10'
    """
    _check_sizes(teacher_layers, student_layers, "skip")
    return LayerMap("skip", tuple((g[0],) for g in groups(teacher_layers, student_layers)))


def skip_last_map(teacher_layers: int, student_layers: int) -> LayerMap:
    """SKIP keeping the last layer: student layer ``i`` takes the last layer of its group.

    >>> skip_last_map(6, 3).describe()
    '1,3,5'
    """
    _check_sizes(teacher_layers, student_layers, "skip-last")
    return LayerMap("skip-last", tuple((g[-1],) for g in groups(teacher_layers, student_layers)))


def skip_uniform_map(teacher_layers: int, student_layers: int) -> LayerMap:
    """SKIP spread uniformly: first and last teacher layers kept, the rest evenly between.

    >>> skip_uniform_map(12, 5).describe()
    '0,3,6,8,11'
    """
    _check_sizes(teacher_layers, student_layers, "skip-uniform")
    if student_layers == 1:
        return LayerMap("skip-uniform", ((0,),))
    step = (teacher_layers - 1) / (student_layers - 1)
    # int(x + 0.5) rounds halves up, unlike round(), which rounds them to even
    return LayerMap("skip-uniform", tuple((int(i * step + 0.5),) for i in range(student_layers)))


def avg_map(teacher_layers: int, student_layers: int) -> LayerMap:
    """AVG: student layer ``i`` takes the true mean of every layer in its group.

    The reference implementation divides before adding the group's last layer; we do not.

    >>> avg_map(4, 2).describe()
    '0+1,2+3'
    """
    _check_sizes(teacher_layers, student_layers, "avg")
    return LayerMap("avg", tuple(tuple(g) for g in groups(teacher_layers, student_layers)))


def identity_map(teacher_layers: int, student_layers: int) -> LayerMap:
    """Identity: student layer ``i`` takes teacher layer ``i`` (equal depths only)."""
    if teacher_layers != student_layers:
        raise LayerMapError(
            f"'identity' needs equal depths (teacher {teacher_layers}, student {student_layers} layers)"
        )
    return LayerMap("identity", tuple((i,) for i in range(student_layers)))


def explicit_map(text: str, teacher_layers: int, student_layers: int) -> LayerMap:
    """A user-given map: comma-separated teacher layers per student layer, ``+`` averages.

    >>> explicit_map("0,2+3,5", 6, 3).sources
    ((0,), (2, 3), (5,))
    """
    try:
        sources = tuple(tuple(int(t) for t in entry.split("+")) for entry in text.split(","))
    except ValueError:
        raise LayerMapError(f"cannot read layer map '{text}': use comma-separated layers, '+' to average") from None
    if len(sources) != student_layers:
        raise LayerMapError(f"layer map '{text}' names {len(sources)} student layers, the student has {student_layers}")
    bad = sorted({t for group in sources for t in group if not 0 <= t < teacher_layers})
    if bad:
        raise LayerMapError(f"layer map '{text}' names teacher layers {bad} out of range 0..{teacher_layers - 1}")
    return LayerMap("explicit", sources)


def monotone_map(similarity: list[list[float]], method: str = "cka") -> LayerMap:
    """The order-preserving map maximising total similarity (dynamic programming).

    ``similarity[i][t]`` scores student layer ``i`` against teacher layer ``t``. Student layers get
    strictly increasing teacher layers; among equal totals the earliest teacher layers win.

    >>> monotone_map([[0.9, 0.8, 0.1], [0.2, 0.9, 0.3]]).describe()
    '0,1'
    >>> monotone_map([[0.1, 0.9, 0.2], [0.1, 0.95, 0.3]]).describe()  # both prefer 1; order wins
    '1,2'
    """
    student_layers = len(similarity)
    teacher_layers = len(similarity[0]) if similarity else 0
    if any(len(row) != teacher_layers for row in similarity):
        raise LayerMapError("the similarity matrix has rows of different lengths")
    if student_layers > teacher_layers:
        raise LayerMapError(
            f"no monotone map puts {student_layers} student layers on {teacher_layers} teacher layers in order: "
            "give an explicit map such as '0,0,1,1'"
        )
    _check_sizes(teacher_layers, student_layers, method)
    bad = [(i, t) for i, row in enumerate(similarity) for t, v in enumerate(row) if v != v]
    if bad:
        raise LayerMapError(f"the similarity of student layer {bad[0][0]} and teacher layer {bad[0][1]} is NaN")
    # best[i][t]: best total for student layers 0..i with layer i on teacher layer t
    neg = float("-inf")
    best = [[neg] * teacher_layers for _ in range(student_layers)]
    came = [[-1] * teacher_layers for _ in range(student_layers)]
    for t in range(teacher_layers):
        best[0][t] = similarity[0][t]
    for i in range(1, student_layers):
        running, arg = neg, -1
        for t in range(teacher_layers):
            if t - 1 >= 0 and best[i - 1][t - 1] > running:
                running, arg = best[i - 1][t - 1], t - 1
            if arg >= 0:
                best[i][t], came[i][t] = running + similarity[i][t], arg
    last = max(range(teacher_layers), key=lambda t: (best[-1][t], -t))
    chosen = [last]
    for i in range(student_layers - 1, 0, -1):
        chosen.append(came[i][chosen[-1]])
    return LayerMap(method, tuple((t,) for t in reversed(chosen)))


LAYER_MAPS: dict[str, Callable[[int, int], LayerMap]] = {
    "skip": skip_map,
    "skip-last": skip_last_map,
    "skip-uniform": skip_uniform_map,
    "avg": avg_map,
    "identity": identity_map,
}


def build_layer_map(spec: str, teacher_layers: int, student_layers: int) -> LayerMap:
    """A map from a method name in :data:`LAYER_MAPS` or an explicit list like ``0,2,4``."""
    if spec in LAYER_MAPS:
        return LAYER_MAPS[spec](teacher_layers, student_layers)
    if spec and spec[0].isdigit():
        return explicit_map(spec, teacher_layers, student_layers)
    raise LayerMapError(f"unknown layer map '{spec}': use one of {', '.join(LAYER_MAPS)} or a list such as '0,2,4'")


LAYER_SELECTIONS: dict[str, Callable[[int], tuple[int, ...]]] = {
    "all": lambda n: tuple(range(n)),
    "first-half": lambda n: tuple(range((n + 1) // 2)),
    "second-half": lambda n: tuple(range((n + 1) // 2, n)),
    "every-other": lambda n: tuple(range(0, n, 2)),
}


def check_layer_selection(spec: str) -> str:
    """A name from :data:`LAYER_SELECTIONS` or a list of layers like ``0,2``, before the student's depth is known.

    >>> check_layer_selection("0, 2")
    '0,2'
    """
    if spec in LAYER_SELECTIONS:
        return spec
    try:
        layers = [int(part) for part in spec.split(",")]
    except ValueError:
        names = ", ".join(LAYER_SELECTIONS)
        raise LayerMapError(
            f"cannot read transfer layers '{spec}': use one of {names} or a list such as '0,2'"
        ) from None
    if any(layer < 0 for layer in layers) or len(set(layers)) != len(layers):
        raise LayerMapError(f"transfer layers '{spec}' must be distinct non-negative layer numbers")
    return ",".join(str(layer) for layer in layers)


def chosen_layers(spec: str, student_layers: int) -> tuple[int, ...]:
    """The student layers that take the transfer (the others keep a fresh initialisation).

    >>> chosen_layers("first-half", 6), chosen_layers("second-half", 3), chosen_layers("every-other", 6)
    ((0, 1, 2), (2,), (0, 2, 4))
    >>> chosen_layers("1,3", 6)
    (1, 3)
    """
    spec = check_layer_selection(spec)
    if spec in LAYER_SELECTIONS:
        layers = LAYER_SELECTIONS[spec](student_layers)
    else:
        layers = tuple(sorted(int(part) for part in spec.split(",")))
        bad = [layer for layer in layers if layer >= student_layers]
        if bad:
            raise LayerMapError(
                f"transfer layers {bad} are out of range: the student has layers 0..{student_layers - 1}"
            )
    if not layers:
        raise LayerMapError(f"transfer layers '{spec}' name no layer of a {student_layers}-layer student")
    return layers
