"""財產帳差異清單 (property_diff): yearly, every agency and fund; differences between property and accounting books."""

import random
from typing import Any

import pandas as pd
import pandera.pandas as pa
from pandera.typing import Series

from collect.forms.spec import IssuedFacts, Meta, column, row_rule

META = Meta(
    title="財產帳差異清單",
    title_en="Property and accounting book differences",
    scope="all",
    period="year",
    deadline_days=30,
    max_rows=50,
    key="category",
    instructions="每一財產類別填一列；差異數由表單自動計算，差異數不為零時須填寫差異原因。金額以新臺幣元為單位。",
)

CATEGORIES = ["土地", "土地改良物", "房屋建築及設備", "機械及設備", "交通及運輸設備", "雜項設備"]


class PropertyDiff(pa.DataFrameModel):
    category: Series[str] = column("財產類別", "Property class", kind="choice", isin=CATEGORIES, unique=True,
                                   width=18)
    property_amount: Series[pd.Int64Dtype] = column("財產帳金額", "Property books", kind="whole", money=True)
    accounting_amount: Series[pd.Int64Dtype] = column("會計帳金額", "Accounting books", kind="whole", money=True)
    difference: Series[float] = column("差異數", "Difference", kind="formula", required=False, money=True,
                                       formula="=N({property_amount})-N({accounting_amount})", width=16,
                                       compute=lambda df: df["property_amount"] - df["accounting_amount"])
    reason: Series[str] = column("差異原因", "Reason for the difference", kind="text", required=False,
                                 max_length=200, width=36)
    action: Series[str] = column("處理情形", "Action taken", kind="text", required=False, max_length=200, width=30)

    @row_rule("reason", "差異數不為零時，須填寫差異原因。", "A reason is required when the difference is not zero.")
    def reason_when_different(cls, df: pd.DataFrame) -> pd.Series:
        same = df["property_amount"] == df["accounting_amount"]
        return same.fillna(True) | df["reason"].notna()


def sample_rows(rng: random.Random, round_id: str, issued: IssuedFacts | None) -> list[dict[str, Any]]:
    """Clean rows for one agency (the demo's simulated agencies): a few classes, a reason wherever books differ."""
    reasons = [("財產增置尚未完成驗收入帳", "已請財產管理單位於下月補登"),
               ("報廢財產會計帳尚未減列", "已簽請會計室辦理減列"),
               ("撥入財產帳價值與會計帳不一致", "已函請撥出機關提供原始憑證")]
    rows = []
    for category in rng.sample(CATEGORIES, rng.randint(2, 5)):
        books = rng.randrange(1_000_000, 900_000_000, 1_000)
        difference = 0 if rng.random() < 0.6 else rng.randrange(-500_000, 500_000, 100) or 100
        reason, action = rng.choice(reasons) if difference else ("", "")
        rows.append({"category": category, "property_amount": books + difference, "accounting_amount": books,
                     "reason": reason, "action": action})
    return rows
