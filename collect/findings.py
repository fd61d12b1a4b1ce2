"""The Finding record and the catalogue of finding codes with their zh-TW and English messages."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

Severity = Literal["error", "warning"]

# code -> (severity, zh-TW template, en template). Templates use str.format fields named below.
CATALOGUE: dict[str, tuple[Severity, str, str]] = {
    # The file as a whole.
    "file.encrypted": ("error", "檔案設有開啟密碼，無法讀取；請移除密碼後重新寄回。",
                       "The file is password-protected and cannot be read; remove the password and send it again."),
    "file.corrupt": ("error", "檔案已損毀或不完整，無法讀取（{detail}）；請重新存檔後寄回。",
                     "The file is damaged or incomplete and cannot be read ({detail}); save it again and resend."),
    "file.not_spreadsheet": ("error", "這不是 Excel 活頁簿（收到的是 {detail}）；請寄回本處發出的 Excel 檔案。",
                             "This is not an Excel workbook (received {detail}); send back the workbook we issued."),
    "file.too_large": ("error", "檔案過大（{detail}），超過系統可處理的上限。",
                       "The file is too large ({detail}) to be processed."),
    "file.suspicious": ("error", "檔案結構異常（{detail}），為安全起見不予讀取。",
                        "The file's structure is abnormal ({detail}) and was not read, for safety."),
    "file.reader_failed": ("error", "讀取檔案時程式無法完成（{detail}）；請以 Excel 重新存檔後寄回。",
                           "Reading the file failed ({detail}); save it again in Excel and resend."),
    "file.empty": ("error", "檔案是空的（0 位元組）。", "The file is empty (0 bytes)."),
    # Identity.
    "stamp.missing": ("error", "此檔案不是本處發出的填報表（{detail}）；請使用寄給貴機關的填報檔案填寫。",
                      "This is not a form issued by us ({detail}); please fill in the workbook sent to you."),
    "stamp.invalid": ("error", "檔案識別資訊無法驗證，可能遭修改或非本處發出；請使用原始填報檔案。",
                      "The file's identity could not be verified; it may have been altered. Use the original form."),
    "stamp.identity_changed": ("error", "識別欄位「{column}」被修改（應為「{expected}」，檔案中為「{value}」）。",
                               "The identity field {column} was changed (expected {expected!r}, found {value!r})."),
    "stamp.unknown_agency": ("error", "檔案所屬機關代碼 {value} 不在機關名單中。",
                             "The agency code {value} in the file is not on the agency list."),
    "stamp.unknown_collection": ("error", "檔案所屬的填報項目 {value} 不存在。",
                                 "The file belongs to collection {value}, which does not exist."),
    "stamp.round_closed": ("error", "填報期間 {value} 已截止收件。", "The round {value} is closed."),
    "stamp.old_version": ("warning", "此檔案使用舊版填報表（版本 {value}），請改用最新發出的檔案。",
                          "This file uses an old version of the form ({value}); use the latest one issued."),
    "sender.unknown": ("error", "寄件者 {value} 不是 {detail} 登記的聯絡信箱，檔案已暫存待人工確認。",
                       "The sender {value} is not a registered address of {detail}; held for staff review."),
    "sender.unauthenticated": ("error", "寄件者 {value} 未通過本處郵件伺服器的寄件網域驗證（{detail}），"
                               "可能為偽冒寄件者；檔案已暫存待人工確認，不回覆此寄件地址。",
                               "The sender {value} failed our mail server's check of the sending domain ({detail}) "
                               "and may be forged; held for staff review, and nothing is sent back to that address."),
    # Structure of the data table.
    "table.sheet_missing": ("error", "找不到工作表「{sheet}」。", "The sheet {sheet!r} is missing."),
    "table.header_missing": ("error", "找不到資料表的欄位標題列（應含「{detail}」）。",
                             "The data table's header row was not found (it should contain {detail})."),
    "table.column_missing": ("error", "缺少欄位「{column}」。", "The column {column!r} is missing."),
    "table.column_renamed": ("error", "欄位標題被修改：應為「{column}」，檔案中為「{value}」。",
                             "A column title was changed: expected {column!r}, found {value!r}."),
    "table.column_moved": ("error", "欄位「{column}」的位置被移動（應在 {detail} 欄）。",
                           "The column {column!r} was moved (it belongs in column {detail})."),
    "table.outside": ("error", "資料表範圍外有填寫內容「{value}」，請填在資料表內。",
                      "A value {value!r} was typed outside the data table; enter it inside the table."),
    "table.merged": ("error", "資料區內有合併儲存格 {detail}，請取消合併。",
                     "Merged cells {detail} in the data area; unmerge them."),
    "table.too_many_rows": ("error", "資料列數 {value} 超過上限 {detail} 列。",
                            "{value} data rows exceed the limit of {detail}."),
    "table.empty": ("error", "資料表沒有任何資料。", "The data table is empty."),
    "table.note": ("warning", "表格外的文字「{value}」不列入彙整；如為應填資料，請填入表格內。",
                   "The text {value!r} outside the table is not collected; if it is data, enter it in the table."),
    "total.mismatch": ("warning", "「{column}」填寫 {value}，依所填數字加總應為 {detail}；彙整時以加總為準。",
                       "{column} states {value}, but its inputs add up to {detail}; the sum is what is collected."),
    "table.total_row": ("warning", "「{value}」為合計列，已略過不計；請勿自行填寫合計列。",
                        "The row {value!r} is a total row and was left out; do not add total rows."),
    # Values.
    "value.required": ("error", "「{column}」必須填寫。", "{column} is required."),
    # A sentence field (「全校班級數：＿＿班」, □ options): the values are read out of the printed words.
    "field.sentence_changed": ("error", "「{column}」所在的文字與本處印製的不同，無法讀出所填的值；請只在空白處填寫，"
                               "其餘文字保持原樣：「{detail}」。",
                               "The printed words around {column} were changed, so the values cannot be read; fill "
                               "in the blanks only and keep the rest as printed: {detail!r}."),
    "field.two_choices": ("error", "「{column}」只能勾選一項，勾選了「{value}」。",
                          "{column} takes one choice; {value!r} were marked."),
    "value.not_number": ("error", "「{column}」應為數字，填寫的是「{value}」。",
                         "{column} must be a number; found {value!r}."),
    "value.not_whole": ("error", "「{column}」應為整數（新臺幣元），填寫的是「{value}」。",
                        "{column} must be a whole number (NT$); found {value!r}."),
    "value.not_date": ("error", "「{column}」應為日期（例如 115/03/05 或 2026-03-05），填寫的是「{value}」。",
                       "{column} must be a date (e.g. 115/03/05 or 2026-03-05); found {value!r}."),
    "value.choice": ("error", "「{column}」只能選擇 {detail}，填寫的是「{value}」。",
                     "{column} must be one of {detail}; found {value!r}."),
    "value.min": ("error", "「{column}」不可小於 {detail}，填寫的是「{value}」。",
                  "{column} must not be less than {detail}; found {value!r}."),
    "value.max": ("error", "「{column}」不可大於 {detail}，填寫的是「{value}」。",
                  "{column} must not be greater than {detail}; found {value!r}."),
    "value.too_long": ("error", "「{column}」最多 {detail} 個字，填寫了 {value} 個字。",
                       "{column} allows at most {detail} characters; found {value}."),
    "value.duplicate": ("error", "「{column}」的「{value}」重複出現。", "{column} {value!r} appears more than once."),
    "value.too_many_digits": ("error", "「{column}」的數字超過 30 位，無法處理；請填寫正確的數值。",
                              "{column} has a number of more than 30 digits, which cannot be processed; enter the "
                              "right value."),
    "value.malformed": ("error", "儲存格內容無法讀取（{detail}：「{value}」），已當作空白；"
                        "請在 Excel 重新填寫此格後存檔寄回。",
                        "The cell's content cannot be read ({detail}: {value!r}) and was taken as blank; type it "
                        "again in Excel, save and send the file again."),
    "sheet.repaired": ("warning", "工作表「{sheet}」的檔案結構有誤（{detail}），已略過該處讀取其餘內容；"
                       "建議以 Excel 開啟並存檔一次。",
                       "The sheet {sheet!r} is malformed ({detail}); the rest of it was read without that part. Open "
                       "and save the file in Excel once."),
    "value.formula_no_result": ("error",
                                "「{column}」是公式「{value}」，但檔案中沒有計算結果，本系統也無法代為計算（{detail}）；"
                                "請用 Excel 開啟並存檔一次後再寄回。",
                                "{column} holds the formula {value} but the file has no result for it, and collect "
                                "cannot compute it ({detail}); open and save the file in Excel once, then send it "
                                "again."),
    "value.formula_error": ("error", "「{column}」的公式「{value}」算出錯誤值 {detail}；請更正公式或改填數值。",
                            "{column}: the formula {value} gives the error {detail}; correct the formula or enter "
                            "the value."),
    "value.error_value": ("error", "「{column}」的值是錯誤值 {value}；請更正後再寄回。",
                          "{column} holds the error value {value}; correct it and send the file again."),
    "value.formula_computed": ("warning",
                               "有 {count} 個儲存格的公式沒有存下計算結果（例如 {detail}），已由本系統依公式代為計算"
                               "並據以檢核；建議用 Excel 開啟並存檔一次後再寄回。",
                               "{count} cells hold formulas without a saved result (e.g. {detail}); collect computed "
                               "them and checked the results; open and save the file in Excel once before sending "
                               "it."),
    "column.more": ("error", "「{column}」另有 {value} 處問題未逐一列出（每欄列出前 {detail} 處）；請一併檢查更正。",
                    "{column} has {value} more problems not listed (the first {detail} per column are); check and "
                    "correct them too."),
    "value.invalid": ("error", "「{column}」的值「{value}」不符規定（{detail}）。",
                      "{column} value {value!r} is not valid ({detail})."),
    "row.rule": ("error", "{detail}", "{detail}"),
    "table.rule": ("error", "{detail}", "{detail}"),
    "table.rule_warning": ("warning", "{detail}", "{detail}"),
    "prefill.row_missing": ("error", "{detail}", "{detail}"),
    "prefill.changed": ("error", "{detail}", "{detail}"),
    "prefill.row_added": ("error", "{detail}", "{detail}"),
    "row.rule_warning": ("warning", "{detail}", "{detail}"),
    "row.rule_skipped": ("warning", "本列有值未通過欄位檢核，「{detail}」這項檢查未執行，更正後會再檢查。",
                         "A value in this row failed its own column's check, so the rule \"{detail}\" was not "
                         "checked; it will be once the value is corrected."),
    # Sign-off workbooks (核轉表) returned by supervising agencies.
    "signoff.sender": ("error", "寄件者 {value} 不是主管機關 {detail} 登記的聯絡信箱；核轉表已暫存待人工確認。",
                       "The sender {value} is not a registered address of the supervising agency {detail}; "
                       "the sign-off workbook is held for staff review."),
    "signoff.decision": ("error", "「{column}」只能選擇 核轉 或 退回，填寫的是「{value}」。",
                         "{column} must be 核轉 (sign off) or 退回 (send back); found {value!r}."),
    "signoff.reason_required": ("error", "退回 {value} 時必須填寫「退回理由」。",
                                "A reason is required when sending {value} back."),
    "signoff.signer_required": ("error", "「{column}」必須填寫。", "{column} is required."),
    "signoff.foreign_unit": ("error", "{value} 不是 {detail} 所屬的機關，不能由其核轉。",
                             "{value} is not a unit of {detail} and cannot be signed off by it."),
    "signoff.stale": ("error", "{detail}；核轉表與目前收件不符，請使用最新寄送的核轉表。",
                      "{detail}; the sign-off workbook does not match the current returns: use the latest one sent."),
    "signoff.undecided": ("warning", "{value} 尚未選擇核轉或退回，本次不處理。",
                          "No decision for {value}; it is left as it is."),
    # Comparisons with the agency's previous accepted round.
    "compare.decreased": ("warning", "「{column}」為累計數，但比上期（{detail}）減少，填寫的是「{value}」。",
                          "{column} is cumulative but went down from the previous round ({detail}) to {value}."),
    "compare.tenfold": ("warning", "「{column}」與上期（{detail}）相差超過十倍，請確認「{value}」是否正確。",
                        "{column} changed more than tenfold from the previous round ({detail}); check {value}."),
}


@dataclass(frozen=True)
class Finding:
    """One problem in a submission; `cell` is the A1 address as the agency had it, or None for the whole file."""

    code: str
    severity: Severity
    message: str
    sheet: str | None = None
    cell: str | None = None
    column: str | None = None
    value: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """code, severity, sheet, cell, column, value, message: the order `collect ingest --json` prints."""
        return {k: getattr(self, k) for k in ("code", "severity", "sheet", "cell", "column", "value", "message")}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Finding:
        return cls(data["code"], data["severity"], data["message"], data.get("sheet"), data.get("cell"),
                   data.get("column"), data.get("value"))


def make(
    code: str,
    locale: str = "zh-TW",
    *,
    sheet: str | None = None,
    cell: str | None = None,
    column: str | None = None,
    value: Any = None,
    detail: Any = "",
    severity: Severity | None = None,
    **params: Any,
) -> Finding:
    """A finding for `code`, its message filled in from the catalogue in the workspace's locale."""
    default_severity, zh, en = CATALOGUE[code]
    template = en if locale == "en" else zh
    shown = "" if value is None else cut(str(value))
    message = one_stop(template.format(column=column or "", value=shown, detail=detail, sheet=sheet or "", **params),
                       locale)
    return Finding(code, severity or default_severity, message, sheet, cell, column, None if value is None else shown)


MAX_VALUE_CHARS = 200  # a value is shown in a finding (receipt, JSON line, annotated copy) to this many characters


def cut(text: str, limit: int = MAX_VALUE_CHARS) -> str:
    """Text shown to at most `limit` characters: a longer one is cut and says how long it was."""
    if len(text) <= limit:
        return text
    return f"{text[:limit]}…（共 {len(text):,} 字）"


def one_stop(message: str, locale: str = "zh-TW") -> str:
    """The message ending in exactly one full stop ("。" in zh-TW, "." in English); a question or an exclamation
    keeps its own mark. A rule's own message ("{detail}" codes) may bring a stop of its own, or none."""
    text = message.rstrip()
    bare = text.rstrip(".。 ")
    if not bare:
        return text
    if bare[-1] in "？！?!":
        return bare
    return bare + ("." if locale == "en" else "。")


def has_errors(findings: list[Finding]) -> bool:
    return any(f.severity == "error" for f in findings)
