"""A task as configuration (where its data is, how to read it) and its loaded, labelled splits."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from peftport.errors import PeftportError
from peftport.tasks.hub import hub_split
from peftport.tasks.readers import TableColumns, TaggedSentence, TextExample, read_conll, read_table

TaskKind = Literal["token", "pair", "single"]
HUB_PREFIX = "hf:"


class ColumnsConfig(BaseModel):
    """Table columns: names when the file has a header, 0-based indices when not."""

    model_config = ConfigDict(extra="forbid")
    text: str | int = "sentence1"
    text_pair: str | int | None = None
    label: str | int = "label"


class TaskConfig(BaseModel):
    """One task. ``train``/``test`` are paths (``{lang}`` is replaced per language) or ``hf:NAME[:CONFIG]@SPLIT``."""

    model_config = ConfigDict(extra="forbid")
    name: str
    kind: TaskKind
    train: str
    test: str
    languages: list[str] = Field(default_factory=lambda: ["en"])
    train_limit: int | None = Field(None, gt=0)
    test_limit: int | None = Field(None, gt=0)
    columns: ColumnsConfig = Field(default_factory=ColumnsConfig)
    header: bool = True
    threshold: float | None = None

    @model_validator(mode="after")
    def _pair_has_two_texts(self) -> TaskConfig:
        if self.kind == "pair" and self.columns.text_pair is None:
            raise ValueError(f"task '{self.name}': a pair task needs columns.text_pair")
        return self

    @property
    def metric(self) -> str:
        """Main score: span F1 for tagging, accuracy for classification (as in the paper)."""
        return "f1" if self.kind == "token" else "accuracy"

    def source(self, split: Literal["train", "test"], language: str) -> str:
        """Where one split of one language is."""
        return (self.train if split == "train" else self.test).replace("{lang}", language)

    def check_files(self) -> None:
        """Fail before any training when a local data file is missing."""
        for language in self.languages:
            for split in ("train", "test"):
                source = self.source(split, language)
                if not source.startswith(HUB_PREFIX) and not Path(source).expanduser().is_file():
                    raise PeftportError(f"task '{self.name}' ({language}): {split} file '{source}' does not exist")


Example = TaggedSentence | TextExample


@dataclass(frozen=True)
class TaskData:
    """Loaded splits of one task in one language, with the label set (sorted, from both splits)."""

    kind: TaskKind
    labels: list[str]
    train: list[Example]
    test: list[Example]


def _read(task: TaskConfig, source: str, limit: int | None) -> list[Example]:
    if source.startswith(HUB_PREFIX):
        return hub_split(source[len(HUB_PREFIX) :], task.kind, task.columns.model_dump(), limit)
    path = Path(source).expanduser()
    if task.kind == "token":
        return list(read_conll(path, limit))
    columns = TableColumns(
        task.columns.text,
        task.columns.label,
        task.columns.text_pair if task.kind == "pair" else None,
        task.header,
        task.threshold,
    )
    return list(read_table(path, columns, limit))


def _labels(examples: list[Example]) -> list[str]:
    found: set[str] = set()
    for example in examples:
        found.update(example.tags if isinstance(example, TaggedSentence) else [example.label])
    return sorted(found)


def load_task(task: TaskConfig, language: str) -> TaskData:
    """Read the train and test split of ``task`` in ``language``."""
    train = _read(task, task.source("train", language), task.train_limit)
    test = _read(task, task.source("test", language), task.test_limit)
    return TaskData(task.kind, _labels(train + test), train, test)
