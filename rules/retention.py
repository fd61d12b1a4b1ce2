"""專案保留申請 (retention): yearly at year end, any agency may apply to carry unspent appropriations over."""

import random
from datetime import date
from typing import Any

import pandas as pd
import pandera.pandas as pa
from pandera.typing import Series

from collect.forms.spec import IssuedFacts, Meta, RuleEnv, column, row_rule, table_rule
from collect.rounds import parse_round

REASONS = ["契約責任", "繼續經費", "已發生尚未清償之債務"]

META = Meta(
    title="專案保留申請",
    title_en="Application to carry appropriations over (year end)",
    scope="all",
    period="year",
    deadline_days=15,
    max_rows=150,
    key="subject",
    instructions="預算科目及預算賸餘數由本處預填；申請保留之科目請填保留數、保留原因、契約名稱或文號及預計支付"
                 "日期（應在次年度），不申請者免填。保留數不可大於預算賸餘數。金額以新臺幣元為單位。",
)


class Retention(pa.DataFrameModel):
    subject: Series[str] = column("預算科目", "Budget item", kind="text", max_length=100, unique=True,
                                  locked_prefill=True, width=36)
    balance: Series[pd.Int64Dtype] = column("預算賸餘數", "Unspent balance", kind="whole", money=True, ge=0,
                                            locked_prefill=True)
    amount: Series[pd.Int64Dtype] = column("保留數", "Amount to carry over", kind="whole", money=True, ge=1,
                                           required=False)
    reason: Series[str] = column("保留原因", "Reason", kind="choice", isin=REASONS, required=False, width=22)
    contract: Series[str] = column("契約名稱或文號", "Contract or document no.", kind="text", required=False,
                                   max_length=100, width=32)
    pay_by: Series[pd.Timestamp] = column("預計支付日期", "Expected payment", kind="date", required=False,
                                          after_round_year=True)

    @row_rule("amount", "保留數不可大於預算賸餘數。", "The amount carried over must not exceed the unspent balance.")
    def within_balance(cls, df: pd.DataFrame) -> pd.Series:
        return df["amount"] <= df["balance"]

    @row_rule("reason", "申請保留之科目須選擇保留原因。", "A reason is required for an amount carried over.")
    def reason_with_amount(cls, df: pd.DataFrame) -> pd.Series:
        return df["amount"].isna() | df["reason"].notna()

    @row_rule("contract", "申請保留之科目須填寫契約名稱或文號。",
              "A contract or document number is required for an amount carried over.")
    def contract_with_amount(cls, df: pd.DataFrame) -> pd.Series:
        return df["amount"].isna() | df["contract"].notna()

    @row_rule("pay_by", "申請保留之科目須填寫預計支付日期。", "An expected payment date is required.")
    def date_with_amount(cls, df: pd.DataFrame) -> pd.Series:
        return df["amount"].isna() | df["pay_by"].notna()

    @table_rule("amount", "未填寫任何保留數；不申請保留者免寄回本表。",
                "No amount is carried over; agencies not applying need not return the form.", warning=True)
    def something_applied(cls, df: pd.DataFrame, env: RuleEnv) -> bool:
        return bool(df["amount"].notna().any())


CONTRACTS = ["年度開口契約（府工字第{n}號）", "委託規劃設計契約（府採字第{n}號）", "設備採購契約（府授主字第{n}號）",
             "工程承攬契約（府建字第{n}號）"]


def sample_rows(rng: random.Random, round_id: str, issued: IssuedFacts | None) -> list[dict[str, Any]]:
    """Clean rows for one agency (the demo): each prefilled 科目 as issued, most applied for (never above the
    balance, with reason, contract and a payment date next year); an agency without prefill adds one 科目."""
    prefilled = [dict(values) for _, values in issued.rows] if issued is not None else []
    if not prefilled:
        prefilled = [{"subject": "一般行政－房屋建築養護", "balance": rng.randrange(1_000_000, 9_000_000, 1_000)}]
    year = parse_round(round_id)[0]
    applied = rng.randrange(len(prefilled))  # at least one 科目 is applied for
    rows = []
    for i, row in enumerate(prefilled):
        balance = int(row.get("balance") or 0)
        out = {**row, "balance": balance}
        if balance >= 1 and (i == applied or rng.random() < 0.6):
            out |= {"amount": max(1, int(balance * rng.uniform(0.2, 1.0)) // 1_000 * 1_000),
                    "reason": rng.choice(REASONS),
                    "contract": rng.choice(CONTRACTS).format(n=f"{year - 1911}{rng.randrange(10_000, 99_999)}"),
                    "pay_by": date(year + 1, rng.randint(1, 6), rng.randint(1, 28))}
        rows.append(out)
    return rows
