"""第二預備金動支數額表 (reserve2_table): yearly, the agencies that used the second reserve fund (the prefill file)."""

import random
from typing import Any

import pandas as pd
import pandera.pandas as pa
from pandera.typing import Series

from collect.forms.spec import IssuedFacts, Meta, column, row_rule

META = Meta(
    title="第二預備金動支數額表",
    title_en="Second reserve fund: use by budget item",
    scope="prefill",
    period="year",
    deadline_days=20,
    max_rows=100,
    key="subject",
    instructions="科目及核定動支數由本處預填；每一科目之實支數、保留數與賸餘數合計須等於核定動支數。"
                 "金額以新臺幣元為單位。",
)


class Reserve2Table(pa.DataFrameModel):
    subject: Series[str] = column("科目", "Budget item", kind="text", max_length=100, unique=True,
                                  locked_prefill=True, width=36)
    approved: Series[pd.Int64Dtype] = column("核定動支數", "Approved for use", kind="whole", money=True, ge=0,
                                             locked_prefill=True)
    spent: Series[pd.Int64Dtype] = column("實支數", "Spent", kind="whole", money=True, ge=0)
    retained: Series[pd.Int64Dtype] = column("保留數", "Carried over", kind="whole", money=True, ge=0)
    remaining: Series[pd.Int64Dtype] = column("賸餘數", "Unused", kind="whole", money=True, ge=0)

    @row_rule("remaining", "實支數、保留數與賸餘數合計須等於核定動支數。",
              "Spent + carried over + unused must equal the amount approved for use.")
    def parts_add_up(cls, df: pd.DataFrame) -> pd.Series:
        return (df["spent"] + df["retained"] + df["remaining"]) == df["approved"]


def sample_rows(rng: random.Random, round_id: str, issued: IssuedFacts | None) -> list[dict[str, Any]]:
    """Clean rows for one agency (the demo): each prefilled 科目 as issued, its approved amount split exactly into
    spent, carried over and unused."""
    prefilled = [dict(values) for _, values in issued.rows] if issued is not None else []
    if not prefilled:  # not issued from a prefill file: a made-up 科目
        prefilled = [{"subject": "一般行政－基本行政工作維持", "approved": rng.randrange(1_000_000, 20_000_000, 1_000)}]
    rows = []
    for row in prefilled:
        approved = int(row.get("approved") or 0)
        spent = int(approved * rng.uniform(0.5, 1.0)) // 1_000 * 1_000
        retained = rng.randrange(0, approved - spent + 1, 1_000) if rng.random() < 0.4 else 0
        rows.append({**row, "approved": approved, "spent": spent, "retained": retained,
                     "remaining": approved - spent - retained})
    return rows
