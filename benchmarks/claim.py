"""The paper's claim over several experiment folders: how often the transferred student beats its baseline, per
task and over the paper's three tasks together (NER, paraphrase identification, NLI), next to its 88.7%.

    python benchmarks/claim.py docs/results/converging docs/results/converging-sentence-en \
        [--teacher zoo:all-MiniLM-L6-v2 --student zoo:paraphrase-MiniLM-L3-v2] [--all-methods]

Each folder is joined on its own (``peftport report``'s join: a transferred run with the baseline of its seed
and module), the cells are kept where the pair matches and, unless ``--all-methods``, the transfer is one of
the paper's (SKIP or AVG, with or without correlation alignment); the sentences are the report's: cases won
per seed, cells won (the paper's unit), their 95% Wilson intervals and the sign test.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
from peftport.experiments.report.render import is_paper_method  # noqa: E402
from peftport.experiments.report.summary import summarise  # noqa: E402
from peftport.experiments.report.wins import evidence, overall  # noqa: E402
from peftport.experiments.store import read_index  # noqa: E402

PAPER_TASKS = {"ner": "NER", "pawsx": "PI (PAWS-X)", "xnli": "NLI (XNLI)"}
NAMES = {**PAPER_TASKS, "stsb": "STS-B (similarity, not one of the paper's tasks)"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folders", type=Path, nargs="+")
    parser.add_argument("--teacher", default="zoo:all-MiniLM-L6-v2")
    parser.add_argument("--student", default="zoo:paraphrase-MiniLM-L3-v2")
    parser.add_argument("--all-methods", action="store_true", help="every transfer, not only the paper's")
    args = parser.parse_args()
    cells = []
    for folder in args.folders:
        for cell in summarise(read_index(folder)):
            paired = (cell.teacher_model, cell.student_model) == (args.teacher, args.student)
            if paired and (args.all_methods or is_paper_method(cell.transfer)):
                cells.append(cell)
    tasks = sorted({c.task for c in cells})
    for task in tasks:
        mine = [c for c in cells if c.task == task]
        languages = ", ".join(sorted({c.language for c in mine}))
        print(f"{NAMES.get(task, task)} ({languages}): {overall(mine)}")
        print(f"  {evidence(mine)}")
    paper = [c for c in cells if c.task in PAPER_TASKS]
    if {c.task for c in paper} != set(tasks) or len(tasks) > 1:
        print(f"The paper's tasks together ({', '.join(sorted({c.task for c in paper}))}): {overall(paper)}")
        print(f"  {evidence(paper)}")
    if len({c.task for c in paper}) != len(tasks):
        print(f"Every task: {overall(cells)}")
        print(f"  {evidence(cells)}")
    print("The paper reports 88.7% of cases won in the matching setup.")


if __name__ == "__main__":
    main()
