"""嚴重特殊傳染性肺炎經費動支及執行情形 (covid19): monthly, every public agency; the rules its returns must pass."""

import random
import zlib
from datetime import date, timedelta
from typing import Any

import pandas as pd
import pandera.pandas as pa
from pandera.typing import Series

from collect.forms.spec import IssuedFacts, Meta, column, row_rule
from collect.rounds import round_end

META = Meta(
    title="嚴重特殊傳染性肺炎經費動支及執行情形",
    title_en="COVID-19 expenditure and execution",
    scope="public",
    period="month",
    deadline_days=10,
    max_rows=200,
    key="name",
    prefill_previous=True,
    execution_rate=("spent", "approved"),  # 執行率 = 實支數 / 核定經費, as the form computes it per row
    instructions="請於淡黃色儲存格填寫；金額以新臺幣元為單位填寫整數；日期可填 115/03/05。執行率由表單自動計算。",
)


class Covid19(pa.DataFrameModel):
    item: Series[pd.Int64Dtype] = column("項次", "Item", kind="whole", required=False, ge=0, width=8, ordinal=True)
    name: Series[str] = column("計畫名稱", "Project", kind="text", max_length=100, unique=True, carry=True,
                               width=36)
    category: Series[str] = column("類別", "Category", kind="choice", isin=["防疫", "紓困", "振興"], carry=True)
    source: Series[str] = column("經費來源", "Source of funds", kind="choice",
                                 isin=["市庫", "中央補助", "第二預備金", "特別預算"], carry=True)
    approved: Series[pd.Int64Dtype] = column("核定經費", "Approved", kind="whole", money=True, ge=0, carry=True)
    committed: Series[pd.Int64Dtype] = column("已動支數", "Committed", kind="whole", money=True, ge=0)
    spent: Series[pd.Int64Dtype] = column("實支數", "Spent", kind="whole", money=True, ge=0, cumulative=True)
    rate: Series[float] = column("執行率", "Execution rate", kind="formula", required=False,
                                 formula='=IF(N({approved})>0,N({spent})/N({approved}),"")', width=10,
                                 compute=lambda df: (df["spent"] / df["approved"].where(df["approved"] > 0)))
    approved_on: Series[pd.Timestamp] = column("核定日期", "Approved on", kind="date", ge=date(2020, 1, 1),
                                               not_after_round_end=True, carry=True)
    note: Series[str] = column("備註", "Note", kind="text", required=False, max_length=200, width=30)

    @row_rule("committed", "已動支數不可大於核定經費。", "Committed must not exceed the approved amount.")
    def committed_within_approved(cls, df: pd.DataFrame) -> pd.Series:
        return df["committed"] <= df["approved"]

    @row_rule("spent", "實支數不可大於已動支數。", "Spent must not exceed the committed amount.")
    def spent_within_committed(cls, df: pd.DataFrame) -> pd.Series:
        return df["spent"] <= df["committed"]


PROJECTS = [
    "防疫物資採購", "快篩試劑採購", "居家檢疫關懷服務", "疫苗接種站設置", "防疫旅館租用", "社區篩檢站營運",
    "紓困補助發放", "弱勢家庭紓困金", "攤商租金減免", "藝文團體紓困", "振興消費券推廣", "商圈振興活動",
    "觀光產業振興", "校園防疫設備", "公共場所消毒作業", "防疫專線人力", "遠距辦公設備", "防疫宣導印製",
]


def sample_rows(rng: random.Random, round_id: str, issued: IssuedFacts | None) -> list[dict[str, Any]]:
    """Clean rows for one agency (the demo's simulated agencies): 1-5 projects, committed <= approved >= spent;
    when its copy carries last round's projects (prefill_previous), those projects again, with this round's amounts."""
    rows = []
    end = round_end(round_id)
    carried = [dict(values) for _, values in issued.rows if values.get("name")] if issued is not None else []
    for i, row in enumerate(carried, start=1):  # committed stays; spent grows with the year (never goes down)
        approved = int(row.get("approved") or 0)
        share = 50 + zlib.crc32(f"{row['name']}{approved}".encode()) % 51  # the project's own 50-100 %
        committed = approved * share // 100 // 1_000 * 1_000
        rows.append({**row, "item": i, "committed": committed, "spent": committed * end.month // 12 // 100 * 100})
    if rows:
        return rows
    for i, name in enumerate(rng.sample(PROJECTS, rng.randint(1, 5)), start=1):
        approved = rng.randrange(100_000, 80_000_000, 1_000)
        committed = rng.randrange(0, approved + 1, 1_000)
        spent = rng.randrange(0, committed + 1, 100)
        approved_on = date(2020, 3, 1) + timedelta(days=rng.randrange(0, (end - date(2020, 3, 1)).days))
        category = "防疫" if i % 3 == 1 else ("紓困" if "紓困" in name or i % 3 == 2 else "振興")
        rows.append({"item": i, "name": name, "category": category,
                     "source": rng.choice(["市庫", "中央補助", "第二預備金", "特別預算"]), "approved": approved,
                     "committed": committed, "spent": spent, "approved_on": approved_on,
                     "note": "" if rng.random() < 0.7 else "依核定計畫執行"})
    return rows
