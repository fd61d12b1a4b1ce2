"""預算審議意見處理（公務） (review_public): each budget session, the public agencies named in the prefill file."""

import random
from datetime import timedelta
from typing import Any

import pandas as pd
import pandera.pandas as pa
from pandera.typing import Series

from collect.forms.spec import IssuedFacts, Meta, column, row_rule
from collect.rounds import round_end

STATUSES = ["已辦理", "辦理中", "未辦理"]

META = Meta(
    title="預算審議意見處理（公務）",
    title_en="Handling of the council's budget review opinions (public agencies)",
    scope="prefill",
    period="session",
    deadline_days=30,
    max_rows=150,
    key="opinion_no",
    fixed_rows=True,
    require_signoff=True,
    instructions="灰色欄位為議會審議意見，由本處預填，不可修改或刪除；請於淡黃色儲存格填寫辦理情形與辦理狀態，"
                 "未辦理完成者須填預計完成日期（可填 115/12/31）。",
)


class ReviewPublic(pa.DataFrameModel):
    opinion_no: Series[str] = column("意見編號", "Opinion no.", kind="code", max_length=20, unique=True,
                                     locked_prefill=True, width=12)
    opinion: Series[str] = column("審議意見", "Review opinion", kind="text", max_length=2000, locked_prefill=True,
                                  width=50)
    action: Series[str] = column("辦理情形", "Action taken", kind="text", max_length=2000, width=50,
                                 hint="請具體說明辦理經過及結果。")
    status: Series[str] = column("辦理狀態", "Status", kind="choice", isin=STATUSES)
    due: Series[pd.Timestamp] = column("預計完成日期", "Expected completion", kind="date", required=False,
                                       not_before_round_start=True, hint="未辦理完成者必填。")
    note: Series[str] = column("備註", "Note", kind="text", required=False, max_length=200, width=24)

    @row_rule("due", "辦理狀態為辦理中或未辦理時，須填寫預計完成日期。",
              "An expected completion date is required unless the status is 已辦理 (done).")
    def due_unless_done(cls, df: pd.DataFrame) -> pd.Series:
        return ~df["status"].isin(["辦理中", "未辦理"]).fillna(False) | df["due"].notna()


ACTIONS = ["已依審議意見檢討改善，並於{d}函送改善報告至議會。", "已成立專案小組研議，刻正辦理相關作業，預計如期完成。",
           "已修正作業要點並通函所屬單位辦理，後續將持續追蹤執行情形。", "已納入下年度預算編列檢討，並加強內部控制。"]


def sample_rows(rng: random.Random, round_id: str, issued: IssuedFacts | None) -> list[dict[str, Any]]:
    """Clean rows for one agency (the demo): each prefilled opinion as issued, with the action taken, a status and
    an expected completion date unless it is done."""
    prefilled = [dict(values) for _, values in issued.rows] if issued is not None else []
    end = round_end(round_id)
    rows = []
    for row in prefilled:
        status = rng.choice(STATUSES)
        when = f"{end.year - 1911}年{rng.randint(1, 10)}月{rng.randint(1, 28)}日"
        out = {**row, "status": status, "action": rng.choice(ACTIONS).format(d=when)}
        if status != "已辦理":
            out["due"] = end + timedelta(days=rng.randrange(30, 365))
        if rng.random() < 0.2:
            out["note"] = "另案專簽辦理"
        rows.append(out)
    return rows
