"""The command line: `python -m helpers COMMAND`, a thin layer over the same functions the notebooks use.

User errors (bad arguments, unknown model, empty prompt, ...) print one clear line and exit with code 2.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from . import download, doctor
from .chat import ChatSession
from .generation import generate
from .loading import ensure_converted_gguf, load_model, offline_forced
from .registry import MODELS, get_spec
from .tokens import format_token_table, token_table

USER_ERROR = 2


def cmd_models(args: argparse.Namespace) -> int:
    """List the course's models: hub id, offline copy, cached or not."""
    for spec in MODELS.values():
        cached = "已缓存" if download.find_cached(spec) else "未缓存"
        offline = "替身模型 (stand-in)" if spec.offline == "standin-folder" else "GGUF 离线副本（量化的真实模型）"
        gated = "（受限仓库 gated：需同意条款并使用访问令牌）" if spec.gated else ""
        print(f"{spec.name:<18} {spec.hub_id:<40} 真实模型{cached}{gated}；离线：{offline}  {spec.description}")
    return 0


def cmd_tokenize(args: argparse.Namespace) -> int:
    """Show the tokens, ids and vocab.txt lines of a text."""
    _, tokenizer = load_model(args.model, quiet=args.json)
    rows = token_table(tokenizer, args.text)
    if args.json:
        print(json.dumps([{"token": r.token, "id": r.id} for r in rows], ensure_ascii=False))
    else:
        print(format_token_table(rows))
    return 0


def sampling_options(args: argparse.Namespace) -> dict:
    """Greedy unless a temperature above 0 was given."""
    if args.greedy or not args.temperature:
        return {"temperature": 0.0}
    return {"temperature": args.temperature, "top_k": args.top_k, "top_p": args.top_p, "seed": args.seed}


def with_prefix(name: str, prompt: str) -> str:
    """The prompt with the special token the model needs in front (Gemma: "<bos>"), unless it is already there."""
    prefix = get_spec(name).prompt_prefix
    return prompt if not prompt.strip() or prompt.startswith(prefix) else prefix + prompt


def cmd_generate(args: argparse.Namespace) -> int:
    """Continue a prompt, used as written (so '[CLS]今天天气真' works); Gemma's "<bos>" is added when missing."""
    model, tokenizer = load_model(args.model, quiet=args.json)
    prompt = with_prefix(args.model, args.prompt)
    result = generate(model, tokenizer, prompt, args.max_new_tokens, **sampling_options(args))
    if args.json:
        payload = {
            "prompt": args.prompt,
            "text": result.text,
            "token_ids": result.new_ids,
            "model": args.model,
            "source": model.course_source.source,
        }
        print(json.dumps(payload, ensure_ascii=False))
    else:
        print(args.prompt + result.text)
    return 0


def cmd_chat(args: argparse.Namespace) -> int:
    """A multi-turn chat in the terminal; an empty line or Ctrl-D ends it."""
    model, tokenizer = load_model(args.model)
    session = ChatSession(model, tokenizer, args.model)
    print("开始对话（空行或 Ctrl-D 结束）。")
    while True:
        try:
            text = input("你：").strip()
        except EOFError:
            break
        if not text:
            break
        print("模型：" + session.say(text, args.max_new_tokens, **sampling_options(args)))
    return 0


COURSE_FOLDER = "<course>"  # `--local-dir` given without a folder: the course's model folder


def cmd_download(args: argparse.Namespace) -> int:
    """Fetch a real model into the HF cache or --local-dir (offline SmolLM2 and Gemma 3: check and convert
    their GGUF file instead; `make setup` runs this).

    Exit codes: 0 ready, 1 the download failed, 2 a setting must change first, 130 interrupted (run again to resume).
    """
    spec = get_spec(args.name)
    if offline_forced() and spec.offline == "gguf-wheel":
        print(f"离线模式：已准备好 {ensure_converted_gguf(spec)}")
        return 0
    local_dir = download.course_models_dir() / spec.name if args.local_dir == COURSE_FOLDER else args.local_dir
    try:
        folder = download.download(spec, endpoint=args.endpoint, local_dir=local_dir)
    except download.DownloadSettingsError as error:
        print(error, file=sys.stderr)
        return USER_ERROR
    except download.DownloadError as error:
        print(error, file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("下载已中断；再次运行同一条命令会从断点继续。 (Download interrupted; run the same command again to "
              "resume.)", file=sys.stderr)
        return 130
    print(f"{spec.name} 已就绪 (ready)：{folder}")
    found = download.find_cached(spec)
    if found is None or found.resolve() != folder.resolve():
        print(f"注意：load_model 只在 HF 缓存和 {download.course_models_dir() / spec.name} 里找模型；"
              f"要用这份文件，请把它们移到那里。 (load_model does not look in this folder.)")
    return 0


def cmd_doctor(args: argparse.Namespace) -> int:
    """Check the environment; exit 1 when something is missing."""
    checks = doctor.run_checks()
    for check in checks:
        print(check)
    return 0 if all(check.ok for check in checks) else 1


def cmd_grade(args: argparse.Namespace) -> int:
    """Run every submitted lab notebook in DIR in a fresh kernel; write one CSV row per submission."""
    from .grading import grade_folder, summary

    out = args.out or args.folder.with_name(args.folder.name + "-grades.csv")
    grades = grade_folder(args.folder, out, timeout=args.timeout, memory_gb=args.memory_gb)
    print(summary(grades))
    print(f"已写入 {out}（每份提交一行）。 (Wrote {out}.)")
    return 0


def add_sampling_arguments(parser: argparse.ArgumentParser) -> None:
    """--greedy (default) or --temperature/--top-k/--top-p/--seed."""
    parser.add_argument("--greedy", action="store_true", help="always pick the most probable token (default)")
    parser.add_argument("--temperature", type=float, default=0.0, help="> 0 samples; 0 is greedy")
    parser.add_argument("--top-k", type=int, default=None)
    parser.add_argument("--top-p", type=float, default=None)
    parser.add_argument("--seed", type=int, default=None)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of `python -m helpers`."""
    parser = argparse.ArgumentParser(prog="python -m helpers", description="LLM text-generation course helpers")
    sub = parser.add_subparsers(dest="command", required=True)

    sub.add_parser("models", help="list the course's models").set_defaults(func=cmd_models)

    p = sub.add_parser("tokenize", help="tokens, ids and vocab.txt lines of a text")
    p.add_argument("text")
    p.add_argument("--model", default="gpt2-chinese")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_tokenize)

    p = sub.add_parser("generate", help="continue a prompt")
    p.add_argument("prompt")
    p.add_argument("--model", default="gpt2-chinese")
    p.add_argument("--max-new-tokens", type=int, default=20)
    add_sampling_arguments(p)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_generate)

    p = sub.add_parser("chat", help="multi-turn chat")
    p.add_argument("--model", default="gpt2-chinese-chat")
    p.add_argument("--max-new-tokens", type=int, default=60)
    add_sampling_arguments(p)
    p.set_defaults(func=cmd_chat)

    p = sub.add_parser("download", help="download a real model from the hub or a mirror")
    p.add_argument("name", help="model name, e.g. gpt2-chinese (`python -m helpers models` lists them)")
    p.add_argument("--endpoint", default=None, help="hub or mirror address, e.g. https://hf-mirror.com")
    p.add_argument("--local-dir", nargs="?", const=COURSE_FOLDER, default=None, metavar="DIR",
                   help="put plain files in DIR instead of the HF cache (no DIR: the course's model folder)")
    p.set_defaults(func=cmd_download)

    sub.add_parser("doctor", help="check the environment").set_defaults(func=cmd_doctor)

    p = sub.add_parser("grade", help="run submitted lab notebooks and collect the checkers' verdicts")
    p.add_argument("folder", type=Path, help="folder with the submitted notebooks (searched recursively)")
    p.add_argument("--out", type=Path, default=None, help="CSV file (default: FOLDER-grades.csv beside it)")
    p.add_argument("--timeout", type=float, default=300, help="seconds per notebook (default 300)")
    p.add_argument("--memory-gb", type=float, default=6, help="address-space limit per notebook (default 6)")
    p.set_defaults(func=cmd_grade)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run one command; user errors become a message and exit code 2, not a traceback."""
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (ValueError, FileNotFoundError) as error:
        print(f"错误 (error): {error}", file=sys.stderr)
        return USER_ERROR
    except KeyboardInterrupt:
        print("已中断。 (Interrupted.)", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
