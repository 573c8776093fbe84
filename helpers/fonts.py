"""A Simplified-Chinese font for matplotlib, so that plot labels are not drawn as empty boxes.

The course depends on `pylopdf-fonts-zh-cn`, which ships Noto Sans SC (SIL Open Font License).
When it is missing we fall back to a CJK font installed on the system.
"""

from __future__ import annotations

import importlib.metadata
from pathlib import Path

FALLBACK_FAMILIES = (
    "Noto Sans CJK SC",
    "Noto Sans SC",
    "Source Han Sans SC",
    "WenQuanYi Zen Hei",
    "Microsoft YaHei",
    "SimHei",
    "PingFang SC",
    "Heiti SC",
)


def bundled_font_file() -> Path | None:
    """Noto Sans SC from the `pylopdf-fonts-zh-cn` package, found without importing it."""
    try:
        files = importlib.metadata.files("pylopdf-fonts-zh-cn") or []
    except importlib.metadata.PackageNotFoundError:
        return None
    for file in files:
        if str(file).endswith("NotoSansSC-Regular.otf"):
            return Path(file.locate()).resolve()
    return None


def use_chinese_font() -> str | None:
    """Register a CJK font with matplotlib and make it the default; return its family name (or None)."""
    import matplotlib
    from matplotlib import font_manager

    family = None
    font_file = bundled_font_file()
    if font_file is not None:
        font_manager.fontManager.addfont(str(font_file))
        family = font_manager.FontProperties(fname=str(font_file)).get_name()
    else:
        installed = {font.name for font in font_manager.fontManager.ttflist}
        family = next((name for name in FALLBACK_FAMILIES if name in installed), None)
    if family is not None:
        matplotlib.rcParams["font.family"] = "sans-serif"
        matplotlib.rcParams["font.sans-serif"] = [family, *matplotlib.rcParams["font.sans-serif"]]
        matplotlib.rcParams["axes.unicode_minus"] = False
    return family
