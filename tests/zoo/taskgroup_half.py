"""A TaskGroup that half-applies a two-step update, and its commit-after control.

A transfer debits one account and credits another in two child tasks of a TaskGroup.
The credit can be refused (the destination is over its limit); the TaskGroup then
cancels the debit and the caller catches the refusal, believing "nothing happened".
Under the stock loop's order the refusal arrives while the debit is still waiting, so
it is cancelled before it applies; if the debit runs a step earlier it has already
applied, and the money vanishes.
"""

from __future__ import annotations

import asyncio


class LimitExceeded(Exception):
    """The destination account would go over its limit."""


class Bank:
    def __init__(self) -> None:
        self.balances = {"alice": 100, "bob": 90}
        self.limit = 100
        self.total = sum(self.balances.values())

    async def authorise(self) -> None:
        await asyncio.sleep(0)

    def check_credit(self, account: str, amount: int) -> None:
        if self.balances[account] + amount > self.limit:
            raise LimitExceeded(f"{account} would hold {self.balances[account] + amount}")


async def taskgroup_half_applied() -> dict[str, int]:
    """TaskGroup half-applied update: one child fails after its sibling applied its step."""
    bank = Bank()

    async def debit(account: str, amount: int) -> None:
        await bank.authorise()
        await asyncio.sleep(0)  # write-ahead log
        await asyncio.sleep(0)  # fsync
        bank.balances[account] -= amount

    async def credit(account: str, amount: int) -> None:
        await bank.authorise()
        bank.check_credit(account, amount)
        bank.balances[account] += amount

    try:
        async with asyncio.TaskGroup() as tg:
            tg.create_task(debit("alice", 30))
            tg.create_task(credit("bob", 30))
    except* LimitExceeded:
        pass  # "the transfer was refused, so nothing happened"
    total = sum(bank.balances.values())
    assert total == bank.total, f"half-applied transfer: {bank.total - total} vanished"
    return bank.balances


async def taskgroup_commit_after() -> dict[str, int]:
    """Control for the half-applied update: children only validate; the parent applies."""
    bank = Bank()

    async def validate_debit(account: str, amount: int) -> None:
        await bank.authorise()
        await asyncio.sleep(0)
        if bank.balances[account] < amount:
            raise LimitExceeded(f"{account} cannot pay {amount}")

    async def validate_credit(account: str, amount: int) -> None:
        await bank.authorise()
        bank.check_credit(account, amount)

    try:
        async with asyncio.TaskGroup() as tg:
            tg.create_task(validate_debit("alice", 30))
            tg.create_task(validate_credit("bob", 30))
    except* LimitExceeded:
        pass
    else:
        bank.balances["alice"] -= 30  # both steps applied together, or neither
        bank.balances["bob"] += 30
    total = sum(bank.balances.values())
    assert total == bank.total, f"half-applied transfer: {bank.total - total} vanished"
    return bank.balances
