"""A check-then-act race: two withdrawals from one account.

Each withdrawal checks the balance, awaits (an audit log write, say), then debits.
Under the stock loop's order the first withdrawal finishes before the second checks,
so the account never goes negative and an ordinary test passes. One out-of-order
step lets both pass the check, and the balance goes below zero.

Run it on the stock loop:          python examples/bank_race.py
Explore it:                        python examples/demo.py
"""

from __future__ import annotations

import asyncio


class Account:
    def __init__(self, balance: int) -> None:
        self.balance = balance
        self.audit: list[str] = []

    async def withdraw(self, amount: int) -> bool:
        if self.balance < amount:  # check ...
            return False
        await self.log(f"withdraw {amount}")  # ... a scheduling point ...
        self.balance -= amount  # ... act
        return True

    async def log(self, line: str) -> None:
        await asyncio.sleep(0)
        self.audit.append(line)


async def main() -> int:
    """Alice and Bob each try to withdraw 70 from an account holding 100."""
    account = Account(100)

    async def alice() -> None:
        await account.withdraw(70)

    async def bob() -> None:
        await asyncio.sleep(0)  # signs in first: two scheduling points ...
        await asyncio.sleep(0)
        await account.withdraw(70)  # ... so under FIFO Alice has already paid

    await asyncio.gather(alice(), bob())
    assert account.balance >= 0, f"overdrawn: balance is {account.balance}"
    return account.balance


if __name__ == "__main__":
    print("stock asyncio loop: final balance", asyncio.run(main()))
