"""One knowledge-infusion question/answer pair and its chat-message row."""

from __future__ import annotations

from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class QAPair:
    kind: str
    concept: str
    instruction: str
    output: str

    def as_row(self) -> dict:
        row = asdict(self)
        row["messages"] = [
            {"role": "user", "content": self.instruction},
            {"role": "assistant", "content": self.output},
        ]
        return row


def quoted(names) -> str:
    """'A', 'B' and 'C' — names in prose answers."""
    names = [f"'{name}'" for name in names]
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]
