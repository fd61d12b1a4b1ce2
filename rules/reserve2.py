"""第二預備金登記處理 (reserve2): yearly, every public agency; its applications to use the second reserve fund."""

import pandas as pd
import pandera.pandas as pa
from pandera.typing import Series

from collect.spec import Meta, column, row_rule

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

    @row_rule("approved_on", "已填核定金額時，須填寫核定日期。", "An approval date is required with an approved amount.")
    def date_with_approval(cls, df: pd.DataFrame) -> pd.Series:
        return df["approved"].isna() | df["approved_on"].notna()

    @row_rule("approval_no", "已填核定金額時，須填寫核定文號。",
              "An approval document number is required with an approved amount.")
    def number_with_approval(cls, df: pd.DataFrame) -> pd.Series:
        return df["approved"].isna() | df["approval_no"].notna()
