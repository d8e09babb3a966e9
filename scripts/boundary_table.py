"""Print simloom.boundary() as the Markdown table of docs/determinism.md ("Every
row of the boundary table"); tests/test_boundary_escapes.py checks the page lists
every row with its area and treatment.

    PYTHONPATH=python python scripts/boundary_table.py
"""

from __future__ import annotations

import simloom


def main() -> None:
    print("| api | area | treatment | in a universe |")
    print("|---|---|---|---|")
    for entry in simloom.boundary():
        print(f"| `{entry.api}` | {entry.area} | {entry.treatment} | {entry.how} |")


if __name__ == "__main__":
    main()
