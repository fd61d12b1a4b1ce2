"""第一預備金登記處理 (reserve1): yearly, every public agency; each use of its first reserve fund."""

import random
from datetime import timedelta
from typing import Any

import pandas as pd
import pandera.pandas as pa
from pandera.typing import Series

from collect.forms.spec import IssuedFacts, Meta, RuleEnv, column, form_field, table_rule
from collect.rounds import round_start

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


USES = [("颱風豪雨災害緊急搶修", "一般行政－基本行政工作維持"), ("辦理公職人員選舉臨時業務", "民政業務－選務工作"),
        ("市政大樓電力設備緊急更換", "一般行政－房屋建築養護"), ("因應流感疫情加強防疫宣導", "衛生保健－防疫業務"),
        ("國際交流活動臨時接待", "一般行政－國際事務"), ("重大交通事故善後處理", "交通管理－交通安全")]


def sample_rows(rng: random.Random, round_id: str, issued: IssuedFacts | None) -> list[dict[str, Any]]:
    """Clean rows for one agency (the demo): a few uses in the fiscal year adding up to less than the appropriation."""
    appropriation = issued.fields.get("appropriation") if issued is not None else None
    ceiling = int(appropriation) if appropriation is not None else 5_000_000
    n = rng.randint(1, 4)
    if ceiling < n * 1_000:
        n = 1
    budget = max(n, int(ceiling * rng.uniform(0.3, 0.95)))
    weights = [rng.uniform(1, 4) for _ in range(n)]
    amounts = [max(1, int(budget * w / sum(weights)) // 1_000 * 1_000) for w in weights]
    start = round_start(round_id)
    days = sorted(rng.sample(range(0, 300), n))
    rows = []
    for i, (amount, day) in enumerate(zip(amounts, days, strict=True)):
        reason, subject = rng.choice(USES)
        rows.append({"used_on": start + timedelta(days=day), "reason": reason, "subject": subject, "amount": amount,
                     "approval_no": f"府授主預字第{start.year - 1911}{rng.randrange(10_000, 99_999)}{i}號"})
    return rows
