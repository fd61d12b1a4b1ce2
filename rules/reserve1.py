"""第一預備金登記處理 (reserve1): yearly, every public agency; each use of its first reserve fund."""

import pandas as pd
import pandera.pandas as pa
from pandera.typing import Series

from collect.spec import Meta, RuleEnv, column, form_field, table_rule

META = Meta(
    title="第一預備金登記處理",
    title_en="First reserve fund register",
    scope="public",
    period="year",
    deadline_days=15,
    max_rows=200,
    fields=(form_field("appropriation", "第一預備金核定數", "First reserve fund appropriation", money=True),),
    instructions="每動支一次填一列；動支金額合計不可超過本處預填之第一預備金核定數。金額以新臺幣元為單位；"
                 "日期可填 115/03/05。",
)


class Reserve1(pa.DataFrameModel):
    used_on: Series[pd.Timestamp] = column("動支日期", "Date of use", kind="date", within_round_year=True)
    reason: Series[str] = column("動支事由", "Purpose", kind="text", max_length=200, width=40)
    subject: Series[str] = column("預算科目", "Budget item", kind="text", max_length=100, width=28)
    amount: Series[pd.Int64Dtype] = column("動支金額", "Amount used", kind="whole", money=True, ge=1)
    approval_no: Series[str] = column("核准文號", "Approval document no.", kind="text", max_length=60, width=24)

    @table_rule("amount", "動支金額合計超過第一預備金核定數 {appropriation} 元。",
                "The amounts used add up to more than the appropriation of NT$ {appropriation}.")
    def within_appropriation(cls, df: pd.DataFrame, env: RuleEnv) -> bool:
        appropriation = env.fields.get("appropriation")
        if appropriation is None:
            return True
        return int(df["amount"].sum(skipna=True)) <= int(appropriation)
