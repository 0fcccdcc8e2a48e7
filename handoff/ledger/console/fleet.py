"""The fleet page's view in SQL: its counts, filters, order and page are asked of the database,
so the page costs one page of rows whatever the fleet's size (loading 5,000 devices, their
holders' names and asset records into Python to show 200 of them cost a quarter of a second).

The rules for online and overdue are those of `queries.offline` and `queries.overdue`, written
as SQL; the text filter looks in the device id, the holder's id and name, and the asset's tag,
model and unit.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from sqlalchemy import ColumnElement, Connection, Select, and_, case, func, not_, or_, select

from handoff.ledger import queries
from handoff.ledger.console.listing import PAGE_ROWS, choice
from handoff.ledger.queries import HELD, DeviceNow
from handoff.ledger.schema import assets, devices, staff

STATES: Final = ("in_use", "locked", "available", "maintenance")
MAX_QUERY: Final = 255


@dataclass(frozen=True)
class Rules:
    """When a device counts as offline and overdue, at one instant."""

    now: float
    overdue_after_s: float
    offline_after_s: float

    def offline(self) -> ColumnElement[bool]:
        return or_(
            func.coalesce(devices.c.status, "") == "offline",
            devices.c.last_heard < self.now - self.offline_after_s,
        )

    def overdue(self) -> ColumnElement[bool]:
        return and_(
            devices.c.state.in_(HELD),
            devices.c.since.is_not(None),
            devices.c.since < self.now - self.overdue_after_s,
        )


HOLDER: Final = func.lower(func.coalesce(staff.c.name, devices.c.staff_id, ""))
ORDERS: Final[dict[str, tuple[ColumnElement[Any], ...]]] = {
    "device": (devices.c.device_id,),
    "site": (devices.c.site, devices.c.device_id),
    "state": (func.coalesce(devices.c.state, "~"), devices.c.device_id),
    "holder": (case((HOLDER == "", "~"), else_=HOLDER), devices.c.device_id),
    "since": (devices.c.since.is_(None), func.coalesce(devices.c.since, 0.0), devices.c.device_id),
    "heard": (devices.c.last_heard, devices.c.device_id),
}
"""The fleet's orders (`?sort=`), each ending on the device id so that pages never shuffle."""


@dataclass(frozen=True)
class FleetView:
    site: str
    state: str
    flag: str
    text: str
    order: str
    descending: bool

    @classmethod
    def of(cls, params: Mapping[str, str]) -> FleetView:
        return cls(
            params.get("site") or "",
            choice(params.get("state"), (*STATES, "none"), "state"),
            choice(params.get("flag"), ("overdue", "offline"), "flag"),
            (params.get("q") or "").strip()[:MAX_QUERY],
            choice(params.get("sort"), tuple(ORDERS), "sort") or "device",
            choice(params.get("dir"), ("asc", "desc"), "dir") == "desc",
        )

    @property
    def params(self) -> dict[str, str]:
        return {
            "site": self.site,
            "state": self.state,
            "flag": self.flag,
            "q": self.text,
            "sort": "" if self.order == "device" else self.order,
            "dir": "desc" if self.descending else "",
        }

    def _place(self, query: Select[Any]) -> Select[Any]:
        """The site and the text: what the counts count."""
        query = query.select_from(
            devices.outerjoin(staff, staff.c.staff_id == devices.c.staff_id).outerjoin(
                assets, assets.c.device_id == devices.c.device_id
            )
        )
        if self.site:
            query = query.where(devices.c.site == self.site)
        if self.text:
            query = query.where(
                or_(
                    *(
                        column.icontains(self.text, autoescape=True)
                        for column in (
                            devices.c.device_id,
                            devices.c.staff_id,
                            staff.c.name,
                            assets.c.asset_tag,
                            assets.c.model,
                            assets.c.unit,
                        )
                    )
                )
            )
        return query

    def _chosen(self, query: Select[Any], rules: Rules) -> Select[Any]:
        """The state and the flag too: the rows listed."""
        query = self._place(query)
        if self.state == "none":
            query = query.where(or_(devices.c.state.is_(None), devices.c.state.not_in(STATES)))
        elif self.state:
            query = query.where(devices.c.state == self.state)
        if self.flag == "overdue":
            query = query.where(rules.overdue())
        if self.flag == "offline":
            query = query.where(rules.offline())
        return query

    def counts(self, conn: Connection, rules: Rules) -> dict[str, int]:
        """Devices by state, overdue and offline, of the site and text chosen, in one pass."""

        def counted(condition: ColumnElement[bool]) -> Any:
            return func.coalesce(func.sum(case((condition, 1), else_=0)), 0)

        known = devices.c.state.in_(STATES)
        columns = {
            **{state: counted(devices.c.state == state) for state in STATES},
            "none": counted(or_(devices.c.state.is_(None), not_(known))),
            "overdue": counted(rules.overdue()),
            "offline": counted(rules.offline()),
            "devices": func.count(),
        }
        row = conn.execute(self._place(select(*(value.label(name) for name, value in columns.items())))).one()
        return {name: int(value) for name, value in zip(columns, row, strict=True)}

    def rows(self, conn: Connection, rules: Rules, page: int | None) -> list[DeviceNow]:
        """The chosen devices in the view's order: one page of them, or all (`page` None)."""
        order = [column.desc() if self.descending else column for column in ORDERS[self.order]]
        query = self._chosen(select(devices), rules).order_by(*order)
        if page is not None:
            query = query.offset((page - 1) * PAGE_ROWS).limit(PAGE_ROWS)
        return queries.described(conn, query, rules.now, rules.overdue_after_s, rules.offline_after_s)

    def total(self, conn: Connection, rules: Rules) -> int:
        return int(conn.execute(self._chosen(select(func.count()), rules)).scalar_one())
