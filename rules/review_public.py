"""預算審議意見處理（公務） (review_public): each budget session, the public agencies named in the prefill file."""

import pandas as pd
import pandera.pandas as pa
from pandera.typing import Series

from collect.spec import Meta, column, row_rule

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
