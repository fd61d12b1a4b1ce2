"""Write the sample agency list agencies.csv, modelled on Taipei City: 142 public agencies, 288 special funds.

The 25 supervising agencies are real first-level Taipei City Government bodies; the units under them are
invented but plausible (some carry real names), and every address uses the reserved domain `example.test`.

Code scheme (6 digits, kept as text; the leading zero of 01..09 must survive every reader):
    XX0000  supervising agency number XX (01..25, in the order of SUPERVISORS below)
    XX0NNN  its NNN-th public agency unit (公務機關), NNN from 001
    XX5NNN  its NNN-th special fund (特種基金), NNN from 001
    XX9NNN  an inactive row (啟用 = 否): a unit or fund that was merged or closed
The active rows are exactly 142 public agencies (25 supervising agencies + 117 units) and 288 special funds;
the file has 3 inactive rows besides. Every unit's supervising agency is its XX0000 (two levels).
Run `python -m collect.sample_agencies [path]` to regenerate; the output is deterministic.
"""

from __future__ import annotations

import csv
import sys
from pathlib import Path

HEADER = ("機關代碼", "機關名稱", "類別", "主管機關代碼", "聯絡信箱", "啟用")
PUBLIC = "公務機關"
FUND = "特種基金"

DISTRICTS = ("松山", "信義", "大安", "中山", "中正", "大同", "萬華", "文山", "南港", "內湖", "士林", "北投")

# Senior high and vocational schools run as public agencies, each with its own 代辦經費 fund.
HIGH_SCHOOLS = (
    "建國高級中學", "第一女子高級中學", "成功高級中學", "中山女子高級中學", "松山高級中學", "大同高級中學",
    "和平高級中學", "景美女子高級中學", "中正高級中學", "大直高級中學", "麗山高級中學", "南港高級中學",
    "內湖高級中學", "西松高級中學", "陽明高級中學", "百齡高級中學", "復興高級中學", "華江高級中學",
    "永春高級中學", "明倫高級中學", "育成高級中學", "萬芳高級中學", "成淵高級中學", "中崙高級中學",
    "大安高級工業職業學校", "松山高級商業家事職業學校",
)

# Place names for the junior high (國民中學) and elementary (國民小學) school funds of 臺北市地方教育發展基金.
_PLACE_WORDS = """
    福星 永樂 日新 太平 蓬萊 大龍 延平 建成 雙蓮 長安 吉林 懷生 永吉
    興雅 三興 光復 博愛 敦化 民生 健康 民權 三民 舊莊 玉成 成德 修德
    東湖 碧湖 明湖 西湖 文湖 新湖 康寧 潭美 雨農 天母 芝山 劍潭 社子
    葫蘆 溪山 平等 清江 湖田 大屯 石牌 桃源 逸仙 立農 明德 關渡 景美
    興隆 木柵 實踐 力行 溪口 武功 龍山 老松 東園 西園 雙園 大理 仁愛
    忠孝 仁德 民族 幸安 金華 古亭 螢橋 河堤 南門 永安 志清 東門 忠義
    北新 北政 萬福 再興 辛亥 興德 吳興 三玉 蘭雅 明道 五常 中崙 敦化南
    長春 松山 信義 大安 中山 中正 大同 萬華 文山 南港 內湖 士林 北投
    士東 文昌 百齡 雙溪 洲美 義方 奎山 湖山 泉源 大湖 新生 成功 頂埔
    指南 博嘉 萬興 明倫 西松 介壽 弘道 金甌 龍門 大直 濱江 麗山 瑠公
    華興 富安 建安 龍安 銘傳 中興 重慶 日善 光仁 南湖 內湖東 五福 秀山
    舊宗 大橋 蘭州 昌平 福林 文林 陽明山 北投西 薇閣 石門 林口 新民 永建
    興福 明義 景興 興華 靜心 萬大 南港西 東新 胡適 玉泉 太平山 中華
    忠義南 松山北 西門 莒光 光華 碧華 中正北 吉祥 永春 三興東 仁愛北 和平
    敦親 信義北 長興 松勇 大同北 延吉 南京 北安 中庸 德興 福德 力行北
    興雅東 龍山北 東湖北 湖田西 社子北 萬芳 木新 景文 明湖北 士林北 天母北
    關渡北 石牌南 立農東 芝山北
"""
SCHOOL_PLACES = tuple(_PLACE_WORDS.split())
JUNIOR_HIGH_FUNDS = 69  # the first 69 places get a 國民中學 fund, the next 138 a 國民小學 fund

# (supervising agency's full name, its public agency units, its special funds), numbered 01..25 in this order.
SUPERVISORS: tuple[tuple[str, tuple[str, ...], tuple[str, ...]], ...] = (
    ("臺北市政府秘書處", ("臺北市政府市政大樓公共事務管理中心",), ()),
    (
        "臺北市政府民政局",
        (
            *(f"臺北市{d}區公所" for d in DISTRICTS),
            *(f"臺北市{d}區戶政事務所" for d in DISTRICTS),
            "臺北市殯葬管理處",
        ),
        ("臺北市殯葬管理處作業基金", *(f"臺北市{d}區里民活動中心代辦經費" for d in DISTRICTS)),
    ),
    (
        "臺北市政府財政局",
        ("臺北市稅捐稽徵處", "臺北市動產質借處"),
        ("臺北市債務基金", "臺北市公有財產開發基金", "臺北市動產質借處作業基金"),
    ),
    (
        "臺北市政府教育局",
        (
            *(f"臺北市立{s}" for s in HIGH_SCHOOLS),
            "臺北市立動物園", "臺北市立圖書館", "臺北市立天文科學教育館",
            "臺北市教師研習中心", "臺北市家庭教育中心",
        ),
        (
            "臺北市地方教育發展基金",
            *(f"臺北市立{s}代辦經費" for s in HIGH_SCHOOLS),
            *(f"臺北市立{p}國民中學代辦經費" for p in SCHOOL_PLACES[:JUNIOR_HIGH_FUNDS]),
            *(f"臺北市立{p}國民小學代辦經費" for p in SCHOOL_PLACES[JUNIOR_HIGH_FUNDS:]),
        ),
    ),
    (
        "臺北市政府產業發展局",
        ("臺北市市場處", "臺北市動物保護處", "臺北市商業處"),
        ("臺北市產業發展基金", "臺北市農業發展基金", "臺北市市場處作業基金"),
    ),
    (
        "臺北市政府工務局",
        (
            "臺北市政府工務局水利工程處", "臺北市政府工務局公園路燈工程管理處", "臺北市政府工務局新建工程處",
            "臺北市政府工務局衛生下水道工程處", "臺北市政府工務局大地工程處",
        ),
        ("臺北市水資源回收基金", "臺北市公園路燈維護基金"),
    ),
    (
        "臺北市政府交通局",
        ("臺北市停車管理工程處", "臺北市交通管制工程處", "臺北市公共運輸處", "臺北市交通事件裁決所"),
        ("臺北市停車場作業基金", "臺北市公共運輸發展基金"),
    ),
    (
        "臺北市政府社會局",
        (
            "臺北市浩然敬老院", "臺北市立陽明教養院",
            "臺北市家庭暴力暨性侵害防治中心", "臺北市老人自費安養中心",
        ),
        (
            "臺北市社會福利基金", "臺北市身心障礙福利基金", "臺北市老人自費安養中心作業基金",
            "臺北市兒童及少年福利基金", "臺北市急難救助代辦經費",
        ),
    ),
    (
        "臺北市政府勞動局",
        ("臺北市就業服務處", "臺北市勞動檢查處", "臺北市職能發展學院"),
        ("臺北市就業安定基金", "臺北市身心障礙者就業基金"),
    ),
    (
        "臺北市政府警察局",
        tuple(
            f"臺北市政府警察局{p}分局"
            for p in (
                "中正第一", "中正第二", "大同", "萬華", "中山", "大安", "信義",
                "松山", "士林", "北投", "文山第一", "文山第二", "南港", "內湖",
            )
        ),
        ("臺北市警察局交通違規罰鍰代辦經費",),
    ),
    (
        "臺北市政府衛生局",
        ("臺北市立聯合醫院", "臺北市立關渡醫院", "臺北市政府衛生局檢驗中心"),
        (
            "臺北市立聯合醫院作業基金",
            *(
                f"臺北市立聯合醫院{b}院區作業基金分基金"
                for b in ("仁愛", "和平婦幼", "中興", "忠孝", "陽明", "松德", "林森中醫昆明")
            ),
            "臺北市菸害防制基金",
        ),
    ),
    (
        "臺北市政府環境保護局",
        ("臺北市內湖垃圾焚化廠", "臺北市木柵垃圾焚化廠", "臺北市北投垃圾焚化廠", "臺北市環保稽查大隊"),
        ("臺北市環境保護基金", "臺北市垃圾處理費代辦經費"),
    ),
    (
        "臺北市政府都市發展局",
        ("臺北市建築管理工程處", "臺北市都市更新處"),
        ("臺北市都市更新基金", "臺北市住宅基金"),
    ),
    (
        "臺北市政府文化局",
        ("臺北市立美術館", "臺北市立交響樂團", "臺北市立國樂團", "臺北市中山堂管理所"),
        ("臺北市文化發展基金", "臺北市立美術館作業基金"),
    ),
    ("臺北市政府消防局", (), ("臺北市消防安全基金",)),
    (
        "臺北市政府捷運工程局",
        tuple(f"臺北市政府捷運工程局{o}" for o in ("第一區工程處", "第二區工程處", "機電系統工程處")),
        ("臺北市捷運建設基金",),
    ),
    ("臺北翡翠水庫管理局", (), ("臺北翡翠水庫水源保育基金",)),
    ("臺北市政府觀光傳播局", (), ("臺北市觀光發展基金",)),
    (
        "臺北市政府地政局",
        (
            "臺北市政府地政局土地開發總隊",
            *(f"臺北市{o}地政事務所" for o in ("古亭", "建成", "松山", "士林", "大安", "中山")),
        ),
        ("臺北市實施平均地權基金", "臺北市市地重劃基金"),
    ),
    ("臺北市政府兵役局", (), ()),
    ("臺北市政府體育局", ("臺北市立體育處",), ("臺北市運動發展基金",)),
    ("臺北市政府資訊局", (), ()),
    ("臺北市政府法務局", (), ()),
    ("臺北市政府主計處", (), ()),
    ("臺北市政府人事處", ("臺北市政府公務人員訓練處",), ("臺北市公務人員退休撫卹基金",)),
)

# Inactive rows (啟用 = 否): (supervising agency number, kind, name, addresses).
INACTIVE: tuple[tuple[int, str, str, str], ...] = (
    (2, PUBLIC, "臺北市孔廟管理委員會（已改制）", ""),
    (4, FUND, "臺北市立木柵國民小學附設補習學校代辦經費（已停辦）", "acct.049001@example.test"),
    (6, FUND, "臺北市公共工程代辦經費（已結束）", ""),
)


def addresses(code: str, kind: str, number: int) -> str:
    """Every agency has acct.<code>@; supervising agencies and every third unit also a second address."""
    first = f"acct.{code}@example.test"
    if number == 0:
        return f"{first}; head.{code}@example.test"
    if number % 3 == 0:
        second = "budget" if kind == PUBLIC else "fund"
        return f"{first}; {second}.{code}@example.test"
    return first


def rows() -> list[tuple[str, str, str, str, str, str]]:
    """All rows of the sample list in file order: each supervising agency, then its units, then its funds."""
    out: list[tuple[str, str, str, str, str, str]] = []
    for index, (name, units, funds) in enumerate(SUPERVISORS, start=1):
        root = f"{index:02d}0000"
        out.append((root, name, PUBLIC, "", addresses(root, PUBLIC, 0), "是"))
        for n, unit in enumerate(units, start=1):
            code = f"{index:02d}0{n:03d}"
            out.append((code, unit, PUBLIC, root, addresses(code, PUBLIC, n), "是"))
        for n, fund in enumerate(funds, start=1):
            code = f"{index:02d}5{n:03d}"
            out.append((code, fund, FUND, root, addresses(code, FUND, n), "是"))
        for n, (_, kind, gone, mail) in enumerate((r for r in INACTIVE if r[0] == index), start=1):
            out.append((f"{index:02d}9{n:03d}", gone, kind, root, mail, "否"))
    return out


def write(path: Path) -> int:
    """Write the list as UTF-8 CSV with BOM (Excel opens it as Unicode); returns the number of agencies."""
    data = rows()
    with path.open("w", encoding="utf-8-sig", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\r\n")
        writer.writerow(HEADER)
        writer.writerows(data)
    return len(data)


def main(argv: list[str] | None = None) -> None:
    """Write agencies.csv (default: at the repository root, next to the `collect` package)."""
    args = sys.argv[1:] if argv is None else argv
    path = Path(args[0]) if args else Path(__file__).resolve().parent.parent / "agencies.csv"
    write(path)


if __name__ == "__main__":
    main()
