"""第二預備金登記處理 (reserve2): yearly, every public agency; its applications to use the second reserve fund."""

import random
from datetime import timedelta
from typing import Any

import pandas as pd
import pandera.pandas as pa
from pandera.typing import Series

from collect.forms.spec import IssuedFacts, Meta, column, row_rule
from collect.rounds import round_start

# 預算法第70條：各機關有下列情形之一者，得請求動支第二預備金。
CONDITIONS = [
    "第1款：原列計畫費用因事實需要奉准修訂致原列經費不敷",
    "第2款：原列計畫費用因增加業務量致增加經費",
    "第3款：因應政事臨時需要必須增加計畫及經費",
]

META = Meta(
    title="第二預備金登記處理",
    title_en="Second reserve fund register",
    scope="public",
    period="year",
    deadline_days=15,
    max_rows=200,
    instructions="每件申請填一列；已核定者須一併填寫核定金額、核定日期及核定文號。金額以新臺幣元為單位；"
                 "日期可填 115/03/05。",
)


class Reserve2(pa.DataFrameModel):
    applied_on: Series[pd.Timestamp] = column("申請日期", "Applied on", kind="date", within_round_year=True)
    project: Series[str] = column("計畫名稱", "Project", kind="text", max_length=100, width=36)
    condition: Series[str] = column("動支條件", "Condition (Budget Act art. 70)", kind="choice", isin=CONDITIONS,
                                    width=30)
    requested: Series[pd.Int64Dtype] = column("申請金額", "Requested", kind="whole", money=True, ge=1)
    approved: Series[pd.Int64Dtype] = column("核定金額", "Approved", kind="whole", money=True, ge=0, required=False)
    approved_on: Series[pd.Timestamp] = column("核定日期", "Approved on", kind="date", required=False,
                                               within_round_year=True)
    approval_no: Series[str] = column("核定文號", "Approval document no.", kind="text", required=False,
                                      max_length=60, width=24)

    @row_rule("approved", "核定金額不可大於申請金額。", "The approved amount must not exceed the amount requested.")
    def approved_within_requested(cls, df: pd.DataFrame) -> pd.Series:
        return df["approved"] <= df["requested"]

    @row_rule("approved_on", "核定日期不可早於申請日期。", "The approval date must not be before the application.")
    def approved_after_applied(cls, df: pd.DataFrame) -> pd.Series:
        # NaT compares False, so a blank date must be let through explicitly (the date rules below catch it).
        return df["approved_on"].isna() | df["applied_on"].isna() | (df["approved_on"] >= df["applied_on"])

    @row_rule("approved_on", "已填核定金額時，須填寫核定日期。",
              "An approval date is required with an approved amount.")
    def date_with_approval(cls, df: pd.DataFrame) -> pd.Series:
        return df["approved"].isna() | df["approved_on"].notna()

    @row_rule("approval_no", "已填核定金額時，須填寫核定文號。",
              "An approval document number is required with an approved amount.")
    def number_with_approval(cls, df: pd.DataFrame) -> pd.Series:
        return df["approved"].isna() | df["approval_no"].notna()


PROJECTS = ["颱風災後道路復建工程", "公有市場緊急修繕", "登革熱防治緊急措施", "大型國際賽會安全維護",
            "老舊校舍緊急補強", "路燈系統緊急汰換", "極端氣候抽水設備租用", "社會福利機構緊急安置"]


def sample_rows(rng: random.Random, round_id: str, issued: IssuedFacts | None) -> list[dict[str, Any]]:
    """Clean rows for one agency (the demo): applications in the fiscal year; most approved, never above the
    amount requested, dated on or after the application, with their document number."""
    start = round_start(round_id)
    rows = []
    for i, project in enumerate(rng.sample(PROJECTS, rng.randint(1, 3))):
        applied_on = start + timedelta(days=rng.randrange(0, 260))
        requested = rng.randrange(500_000, 50_000_000, 1_000)
        row: dict[str, Any] = {"applied_on": applied_on, "project": project, "condition": rng.choice(CONDITIONS),
                               "requested": requested}
        if rng.random() < 0.7:
            row |= {"approved": int(requested * rng.uniform(0.6, 1.0)) // 1_000 * 1_000,
                    "approved_on": applied_on + timedelta(days=rng.randint(5, 40)),
                    "approval_no": f"府授主預字第{start.year - 1911}{rng.randrange(10_000, 99_999)}{i}號"}
        rows.append(row)
    return rows
