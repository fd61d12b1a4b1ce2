"""The agency list: load and check it (all problems at once, in zh-TW); the supervising-agency hierarchy."""

from __future__ import annotations

import csv
import io
import re
import unicodedata
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any

from collect.xlsx.book import column_letter, first_sheet_rows

PUBLIC = "公務機關"
FUND = "特種基金"
KINDS = (PUBLIC, FUND)

COL_CODE = "機關代碼"
COL_NAME = "機關名稱"
COL_KIND = "類別"
COL_SUPERVISOR = "主管機關代碼"
COL_EMAILS = "聯絡信箱"
COL_ACTIVE = "啟用"
COL_FORMAT = "格式"  # optional: the file format of the agency's copies, xlsx or ods (blank: the collection's)
FORMATS = ("xlsx", "ods")
REQUIRED_COLUMNS = (COL_CODE, COL_NAME, COL_KIND, COL_SUPERVISOR, COL_EMAILS, COL_ACTIVE)

SCOPES = ("public", "funds", "all")

_TRUE = {"", "是", "Y", "YES", "TRUE", "1", "T", "V"}
_FALSE = {"否", "N", "NO", "FALSE", "0", "F"}
# Between addresses in one cell: ; , 、 whitespace/newlines, and the full-width ； ， that IMEs type.
_ADDRESS_SEPARATORS = re.compile(r"[;,、；，\s]+")
_LOCAL_PART = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~.-]+")
_DOMAIN_LABEL = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?")
_OLE_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"


@dataclass(frozen=True)
class Agency:
    """One reporting unit; `supervisor` is None for a root (a supervising agency); `row` is its file row."""

    code: str
    name: str
    kind: str  # PUBLIC ("公務機關") or FUND ("特種基金")
    supervisor: str | None
    emails: tuple[str, ...]
    active: bool
    row: int
    format: str = ""  # "xlsx" | "ods" | "" (the collection's or workspace's format)


@dataclass(frozen=True)
class Problem:
    """One problem in the agency list; `row` is the 1-based file row (header = 1), None for the whole file."""

    row: int | None
    column: str | None
    message: str

    def __str__(self) -> str:
        where = " ".join(p for p in (f"第 {self.row} 列" if self.row else "", self.column or "") if p)
        return f"{where}: {self.message}" if where else self.message


class AgencyListError(Exception):
    """The agency list cannot be used; `problems` holds every problem found, each with its row."""

    def __init__(self, path: Path, problems: Sequence[Problem]) -> None:
        self.path = Path(path)
        self.problems = list(problems)
        lines = [f"機關名單 {self.path} 有 {len(self.problems)} 個問題："]
        lines.extend(str(p) for p in self.problems)
        super().__init__("\n".join(lines))


class Registry:
    """The checked agency list: agencies by code in file order, and the supervising-agency hierarchy."""

    def __init__(self, agencies: Iterable[Agency]) -> None:
        self.agencies: dict[str, Agency] = {}
        for agency in agencies:
            if agency.code in self.agencies:
                raise ValueError(f"機關代碼「{agency.code}」重複")
            self.agencies[agency.code] = agency
        problems = _hierarchy_problems(self.agencies)
        if problems:
            raise ValueError("\n".join(str(p) for p in problems))
        self._root: dict[str, str] = {code: self._find_root(code) for code in self.agencies}

    def _find_root(self, code: str) -> str:
        supervisor = self.agencies[code].supervisor
        while supervisor is not None:
            code = supervisor
            supervisor = self.agencies[code].supervisor
        return code

    def __len__(self) -> int:
        return len(self.agencies)

    def __iter__(self) -> Iterator[Agency]:
        return iter(self.agencies.values())

    def __contains__(self, code: object) -> bool:
        return code in self.agencies

    def _require(self, code: str) -> Agency:
        agency = self.agencies.get(_code_text(code))
        if agency is None:
            raise KeyError(f"機關代碼「{code}」不在機關名單中")
        return agency

    def get(self, code: str) -> Agency | None:
        """The agency with this code (surrounding spaces and full-width digits tolerated), or None."""
        return self.agencies.get(_code_text(code))

    def supervisors(self) -> list[Agency]:
        """The supervising agencies (the roots, active or not), in file order."""
        return [a for a in self.agencies.values() if a.supervisor is None]

    def units_of(self, code: str) -> list[Agency]:
        """The direct units of `code` (active or not, excluding itself), in file order."""
        code = self._require(code).code
        return [a for a in self.agencies.values() if a.supervisor == code]

    def supervisor_of(self, code: str) -> Agency:
        """The root above `code` (through any number of levels); a root is its own supervising agency."""
        return self.agencies[self._root[self._require(code).code]]

    def in_scope(self, scope: str | list[str]) -> list[Agency]:
        """Active agencies in `scope`: "public", "funds", "all" or a list of codes; always in file order.

        An unknown scope word or code raises ValueError; inactive agencies named in a list are left out.
        """
        if isinstance(scope, str):
            if scope not in SCOPES:
                raise ValueError(f"範圍「{scope}」不正確，應為 public、funds、all 或機關代碼清單")
            kinds = {"public": {PUBLIC}, "funds": {FUND}, "all": set(KINDS)}[scope]
            return [a for a in self.agencies.values() if a.active and a.kind in kinds]
        wanted = {_code_text(c) for c in scope}
        unknown = sorted(wanted - self.agencies.keys())
        if unknown:
            raise ValueError(f"機關代碼不在機關名單中：{'、'.join(unknown)}")
        return [a for a in self.agencies.values() if a.active and a.code in wanted]

    def addresses_for(self, code: str) -> set[str]:
        """Lower-cased addresses of `code` and of every supervising agency above it (up to the root)."""
        agency: Agency | None = self._require(code)
        found: set[str] = set()
        while agency is not None:
            found.update(e.lower() for e in agency.emails)
            agency = self.agencies[agency.supervisor] if agency.supervisor is not None else None
        return found

    def tree_rows(self) -> list[tuple[Agency, list[Agency]]]:
        """For each root in file order: (root, every agency below it at any depth, in file order)."""
        below: dict[str, list[Agency]] = {a.code: [] for a in self.supervisors()}
        for agency in self.agencies.values():
            root = self._root[agency.code]
            if root != agency.code:
                below[root].append(agency)
        return [(self.agencies[root], units) for root, units in below.items()]


def load_agencies(path: Path) -> Registry:
    """Read and check the agency list (.xlsx/.xlsm or .csv); raise AgencyListError listing every problem."""
    path = Path(path)
    rows, problems = _read_rows(path)
    if not problems:
        agencies, problems = _check_rows(rows)
        if not problems:
            return Registry(agencies)
    raise AgencyListError(path, problems)


# --- reading ---


def _read_rows(path: Path) -> tuple[list[list[str]], list[Problem]]:
    """All rows of the file as text, row 1 first (blank rows kept, so list index + 1 is the file row)."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        return [], [Problem(None, None, f"無法開啟機關名單檔案 {path}（{exc.strerror or exc}）")]
    if not data:
        return [], [Problem(None, None, f"機關名單檔案 {path.name} 是空的（0 位元組）")]
    if data.startswith(_OLE_MAGIC):
        message = f"{path.name} 是舊版 .xls 或加密的活頁簿，無法讀取；請另存為 .xlsx 或 CSV"
        return [], [Problem(None, None, message)]
    if data.startswith(b"PK\x03\x04") or path.suffix.lower() in (".xlsx", ".xlsm"):
        return _read_xlsx(path)
    return _read_csv(data, path)


def _read_xlsx(path: Path) -> tuple[list[list[str]], list[Problem]]:
    try:
        rows = [[_cell_text(v) for v in values] for values in first_sheet_rows(path)]
    except Exception as exc:  # any failure to open or read is reported as a problem of the list, not a crash
        return [], [Problem(None, None, f"無法讀取活頁簿 {path.name}（{type(exc).__name__}: {exc}）")]
    return rows, []


def _read_csv(data: bytes, path: Path) -> tuple[list[list[str]], list[Problem]]:
    text: str | None = None
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        encodings: tuple[str, ...] = ("utf-16",)
    else:
        encodings = ("utf-8-sig", "cp950")  # Excel on zh-TW Windows saves "CSV" as Big5 (cp950)
    for encoding in encodings:
        try:
            text = data.decode(encoding)
            break
        except UnicodeDecodeError:
            continue
    if text is None:
        message = f"{path.name} 的文字編碼無法辨識（不是 UTF-8 也不是 Big5）；請另存為 UTF-8 CSV"
        return [], [Problem(None, None, message)]
    first_line = text.split("\n", 1)[0]
    delimiter = "\t" if "\t" in first_line and "," not in first_line else ","
    try:
        rows = [list(r) for r in csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)]
    except csv.Error as exc:
        return [], [Problem(None, None, f"{path.name} 不是正確的 CSV 檔（{exc}）")]
    return rows, []


def _cell_text(value: Any) -> str:
    """A cell as trimmed text; a whole number stored as a number loses its ".0"."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, datetime | date):
        return value.isoformat()
    return str(value).strip()


def _code_text(value: str) -> str:
    """A code as compared: NFKC (full-width digits and letters become ASCII), trimmed."""
    return unicodedata.normalize("NFKC", value).strip()


def _header_key(value: str) -> str:
    return re.sub(r"\s+", "", unicodedata.normalize("NFKC", value))


# --- checking ---


def _check_rows(rows: list[list[str]]) -> tuple[list[Agency], list[Problem]]:
    problems: list[Problem] = []
    header_at = next((i for i, r in enumerate(rows) if any(c.strip() for c in r)), None)
    if header_at is None:
        return [], [Problem(None, None, "機關名單沒有任何內容（找不到標題列）")]
    header_row = header_at + 1  # the first non-blank row; normally row 1
    header = [_header_key(c) for c in rows[header_at]]
    columns: dict[str, int] = {}
    for index, title in enumerate(header):
        if title in REQUIRED_COLUMNS and title in columns:
            twice = f"第 {column_letter(columns[title] + 1)} 欄與第 {column_letter(index + 1)} 欄"
            problems.append(Problem(header_row, title, f"標題列有兩個「{title}」欄（{twice}），請只保留一欄"))
        elif title in (*REQUIRED_COLUMNS, COL_FORMAT):
            columns[title] = index
    found = "、".join(t for t in header if t) or "（空白）"
    for title in REQUIRED_COLUMNS:
        if title not in columns:
            problems.append(Problem(header_row, title, f"缺少必要欄位「{title}」；標題列中找到的是：{found}"))

    agencies: list[Agency] = []
    first_row_of: dict[str, int] = {}
    for number, row in enumerate(rows[header_at + 1 :], start=header_row + 1):
        # None = the column itself is missing (already reported; its checks are skipped), "" = blank cell.
        values = {
            title: (row[i].strip() if i < len(row) else "") if (i := columns.get(title)) is not None else None
            for title in (*REQUIRED_COLUMNS, COL_FORMAT)
        }
        if not any(values[t] for t in REQUIRED_COLUMNS):
            continue  # a blank row (extra columns alone do not make an agency)
        agency, row_problems = _check_row(number, values, first_row_of)
        problems.extend(row_problems)
        if agency is not None:
            agencies.append(agency)
    if COL_SUPERVISOR in columns:
        problems.extend(_hierarchy_problems({a.code: a for a in agencies}))
    problems.sort(key=lambda p: p.row or 0)  # stable: within a row, in column-check order
    return agencies, problems


def _check_row(
    number: int, values: dict[str, str | None], first_row_of: dict[str, int]
) -> tuple[Agency | None, list[Problem]]:
    """One data row -> its agency (None for a blank or repeated code) and its problems."""
    problems: list[Problem] = []

    def add(column: str, message: str) -> None:
        problems.append(Problem(number, column, message))

    raw_code, name, kind = values[COL_CODE], values[COL_NAME] or "", values[COL_KIND]
    code = _code_text(raw_code or "")
    first = first_row_of.setdefault(code, number) if code else None
    if raw_code is not None and not code:
        add(COL_CODE, "機關代碼空白")
    elif first is not None and first != number:
        add(COL_CODE, f"機關代碼「{code}」重複（第 {first} 列與第 {number} 列）")
    if values[COL_NAME] is not None and not name:
        add(COL_NAME, f"機關名稱空白（機關代碼「{code}」）" if code else "機關名稱空白")
    if kind is not None and kind not in KINDS:
        add(COL_KIND, f"類別為{f'「{kind}」' if kind else '空白'}，只能填「{PUBLIC}」或「{FUND}」")
    active = True
    if (flag := values[COL_ACTIVE]) is not None:
        normal = unicodedata.normalize("NFKC", flag).strip().upper()
        active = normal not in _FALSE
        if active and normal not in _TRUE:
            add(COL_ACTIVE, f"啟用欄填寫「{flag}」，只能填 是/否（或 Y/N、TRUE/FALSE、1/0；空白視為是）")
    emails: list[str] = []
    if (cell := values[COL_EMAILS]) is not None:
        for address in (a for a in _ADDRESS_SEPARATORS.split(cell) if a):
            reason = address_problem(address)
            if reason:
                add(COL_EMAILS, f"聯絡信箱「{address}」格式不正確：{reason}")
            elif address.lower() not in {e.lower() for e in emails}:
                emails.append(address)
        if active and not cell:
            add(COL_EMAILS, f"啟用中的機關{f'「{code}」' if code else ''}沒有聯絡信箱")
    fmt = (values.get(COL_FORMAT) or "").strip().lower().lstrip(".")
    if fmt and fmt not in FORMATS:
        add(COL_FORMAT, f"格式欄填寫「{values[COL_FORMAT]}」，只能填 xlsx 或 ods（空白視為本表預設格式）")
        fmt = ""
    if not code or first != number:
        return None, problems
    supervisor = _code_text(values[COL_SUPERVISOR] or "") or None
    return Agency(code, name, kind or "", supervisor, tuple(emails), active, number, fmt), problems


def _hierarchy_problems(agencies: dict[str, Agency]) -> list[Problem]:
    """Unknown supervising agencies, and cycles (each once, at the row of its first member in file order)."""
    problems: list[Problem] = []
    for agency in agencies.values():
        if agency.supervisor is not None and agency.supervisor not in agencies:
            message = f"主管機關代碼「{agency.supervisor}」不在機關名單中（{agency.code} {agency.name}）"
            problems.append(Problem(agency.row, COL_SUPERVISOR, message))
    state: dict[str, int] = {}  # 1 = on the current path, 2 = done
    for start in agencies:
        path: list[str] = []
        code: str | None = start
        while code is not None and code in agencies and code not in state:
            state[code] = 1
            path.append(code)
            code = agencies[code].supervisor
        if code is not None and state.get(code) == 1:
            cycle = path[path.index(code):]
            first = min(cycle, key=lambda c: agencies[c].row)
            at = cycle.index(first)
            ordered = [*cycle[at:], *cycle[:at], first]
            problems.append(Problem(agencies[first].row, COL_SUPERVISOR,
                                    f"主管機關形成循環：{' → '.join(ordered)}（無法追溯到最上層的主管機關）"))
        for c in path:
            state[c] = 2
    return problems


def address_problem(address: str) -> str | None:
    """Why `address` is not a usable mail address (zh-TW), or None when it is fine. Simple and strict."""
    for char in address:
        category = unicodedata.category(char)
        if char.isspace() or category in ("Cf", "Cc"):
            return f"含有空白或看不見的字元（U+{ord(char):04X}）"
        if ord(char) > 127 and (category[0] in "PS" or unicodedata.east_asian_width(char) == "F"):
            return f"含有全形字元或中文標點「{char}」"
    if address.count("@") != 1:
        return "應有且只有一個 @" if "@" in address else "缺少 @"
    local, domain = address.split("@")
    if not local:
        return "@ 前面沒有帳號"
    if not domain:
        return "@ 後面沒有網域"
    for char in address:
        if ord(char) > 127:
            return f"含有非英數字元「{char}」"
    if not _LOCAL_PART.fullmatch(local) or local.startswith(".") or local.endswith(".") or ".." in local:
        bad = next((c for c in local if not _LOCAL_PART.fullmatch(c)), ".")
        return f"帳號部分含有不允許的字元「{bad}」"
    labels = domain.split(".")
    if len(labels) < 2:
        return f"網域「{domain}」缺少「.」"
    if not all(_DOMAIN_LABEL.fullmatch(label) for label in labels):
        return f"網域「{domain}」不完整或含有不允許的字元"
    return None
