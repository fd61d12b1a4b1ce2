"""前瞻基礎建設計畫第1期特別預算補助經費調查 (forward_subsidy): several rounds a year (quarters), the agencies
with subsidised projects (the prefill file)."""

import random
from datetime import date, timedelta
from typing import Any

import pandas as pd
import pandera.pandas as pa
from pandera.typing import Series

from collect.forms.spec import IssuedFacts, Meta, column, row_rule
from collect.rounds import round_end

META = Meta(
    title="前瞻基礎建設計畫第1期特別預算補助經費調查",
    title_en="Forward-looking Infrastructure, phase 1 special budget: subsidised projects",
    scope="prefill",
    period="quarter",
    deadline_days=10,
    max_rows=100,
    key="project",
    instructions="計畫名稱由本處預填；累計實支數為自計畫開始累計至本季底之實支數，不可大於中央補助款與市配合款"
                 "之合計。金額以新臺幣元為單位；日期可填 116/06/30。",
)


class ForwardSubsidy(pa.DataFrameModel):
    project: Series[str] = column("計畫名稱", "Project", kind="text", max_length=100, unique=True,
                                  locked_prefill=True, width=40)
    central: Series[pd.Int64Dtype] = column("中央補助款", "Central subsidy", kind="whole", money=True, ge=0)
    city: Series[pd.Int64Dtype] = column("市配合款", "City share", kind="whole", money=True, ge=0)
    spent: Series[pd.Int64Dtype] = column("累計實支數", "Spent to date", kind="whole", money=True, ge=0,
                                          cumulative=True)
    rate: Series[float] = column("執行率", "Execution rate", kind="formula", required=False, width=10,
                                 formula='=IF(N({central})+N({city})>0,N({spent})/(N({central})+N({city})),"")')
    due: Series[pd.Timestamp] = column("預定完工日期", "Planned completion", kind="date", ge=date(2017, 1, 1))

    @row_rule("spent", "累計實支數不可大於中央補助款與市配合款之合計。",
              "Spent to date must not exceed the central subsidy plus the city share.")
    def spent_within_sources(cls, df: pd.DataFrame) -> pd.Series:
        return df["spent"] <= df["central"] + df["city"]


def sample_rows(rng: random.Random, round_id: str, issued: IssuedFacts | None) -> list[dict[str, Any]]:
    """Clean rows for one agency (the demo): each prefilled project as issued (its amounts as prefilled, made up
    where none were), spent to date within the two sources, and a planned completion date."""
    prefilled = [dict(values) for _, values in issued.rows] if issued is not None else []
    if not prefilled:
        prefilled = [{"project": "城鄉建設－人行環境改善"}]
    rows = []
    for row in prefilled:
        central = int(row.get("central") or rng.randrange(5_000_000, 100_000_000, 1_000))
        city = int(row.get("city") or central * 2 // 3 // 1_000 * 1_000)
        spent = int((central + city) * rng.uniform(0.05, 0.9)) // 1_000 * 1_000
        due = round_end(round_id) + timedelta(days=rng.randrange(90, 1_200))
        rows.append({**row, "central": central, "city": city, "spent": spent, "due": due})
    return rows
