#!/usr/bin/env python3
"""pixmill's kernel against libvips and Pillow: CPU time per image on one core (issue 5).

Run it through benches/kernel.sh, which builds the kernel's harness, fetches the corpus and
pins everything to one core. What it does:

- pixmill runs in a child process (`pixmill-bench serve`, JSON lines), libvips and Pillow
  here; each tool decodes from bytes in memory and encodes to bytes in memory, and is timed
  by its own process's CPU time.
- Per round, per op, per file, the tools run one after the other in an order that rotates,
  so drift on the machine falls on every tool alike. A warm-up pass is not counted.
- An op's figure is its total over the corpus per round, then the median over rounds.
- Floors (`pixmill-bench floor`: the kernel's own decode step alone, as the op's render
  decodes) are timed in the same rotation.
- Peak memory comes from `pixmill-bench mem`, a fresh process per op.
"""

import os

# libvips reads this when it starts: one worker thread, like the other tools.
os.environ["VIPS_CONCURRENCY"] = "1"

import argparse  # noqa: E402
import datetime  # noqa: E402
import io  # noqa: E402
import json  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import PIL  # noqa: E402
import pyvips  # noqa: E402
from PIL import Image, ImageFilter  # noqa: E402

pyvips.cache_set_max(0)

OPS = ["thumbnail", "resize", "grayscale", "blur", "webp"]
TOOLS = ["pixmill", "libvips", "pillow", "floor"]
# The floor each op is compared with: thumbnail and webp need the same scaled decode,
# resize and blur the same full decode, so only three floors are timed.
FLOOR_OF = {
    "thumbnail": "thumbnail",
    "webp": "thumbnail",
    "resize": "resize",
    "blur": "resize",
    "grayscale": "grayscale",
}
# Speed goals: libvips CPU time / pixmill CPU time at least this.
SPEED_GOALS = {"thumbnail": 1.3, "resize": 1.3, "grayscale": 1.9, "blur": 1.3, "webp": 1.3}
THUMB_MB_GOAL = 30.0
FULL_BUFFERS_GOAL = 2.0
FULL_SIZE_OPS = ["resize", "grayscale", "blur"]

WIDTH = 800
QUALITY = 80
BLUR_SIGMA = 2.0
# libvips' thumbnail box is width x height; height this large means "fit the width only".
UNBOUNDED = 100_000

QUICK_FILES = [
    "rocket.jpg",
    "Dune.jpg",
    "Grey_2560x1600_gray.jpg",
    "Picture_0B_by_freespace.jpg",
]
CONTACT_FILES = [
    "Dragonfly_by_Bolly.jpg",
    "Grey_2560x1600_gray.jpg",
    "RainDrops.jpg",
]
CROP = (360, 270)


# ---------------------------------------------------------------- the tools


def thumb_size(width, height):
    """The fit-inside-800-wide size, never upscaled."""
    if width <= WIDTH:
        return width, height
    return WIDTH, max(1, round(height * WIDTH / width))


def vips_run(op, buf):
    if op in ("thumbnail", "webp"):
        image = pyvips.Image.thumbnail_buffer(buf, WIDTH, height=UNBOUNDED, size="down")
        if op == "webp":
            return image.webpsave_buffer(Q=QUALITY)
        return image.jpegsave_buffer(Q=QUALITY)
    image = pyvips.Image.new_from_buffer(buf, "", access="sequential")
    if op == "resize":
        scale = min(1.0, WIDTH / image.width)
        if scale < 1.0:
            image = image.resize(scale, kernel="lanczos3")
    elif op == "grayscale":
        image = image.colourspace("b-w")
    elif op == "blur":
        image = image.gaussblur(BLUR_SIGMA)
    return image.jpegsave_buffer(Q=QUALITY)


def pillow_run(op, buf):
    image = Image.open(io.BytesIO(buf))
    if op in ("thumbnail", "webp", "resize"):
        size = thumb_size(*image.size)
        if op != "resize":
            # Pillow's shrink-on-load: libjpeg's DCT scaling to at least `size`.
            image.draft(image.mode, size)
        if image.size != size:
            image = image.resize(size, Image.LANCZOS)
        else:
            image.load()
    elif op == "grayscale":
        image = image.convert("L")
    elif op == "blur":
        image = image.filter(ImageFilter.GaussianBlur(BLUR_SIGMA))
    out = io.BytesIO()
    if op == "webp":
        image.save(out, "WEBP", quality=QUALITY)
    else:
        image.save(out, "JPEG", quality=QUALITY)
    return out.getvalue()


def timed(fn, *args):
    start = time.process_time()
    out = fn(*args)
    return time.process_time() - start, out


class Child:
    """A `pixmill-bench serve|floor` process answering one JSON line per request."""

    def __init__(self, binary, mode):
        self.mode = mode
        self.proc = subprocess.Popen(
            [binary, mode],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            bufsize=1,
        )

    def run(self, op, path, write=None):
        request = {"op": op, "file": str(path), "reps": 1}
        if write:
            request["write"] = str(write)
        self.proc.stdin.write(json.dumps(request) + "\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        if not line:
            sys.exit(f"pixmill-bench {self.mode} exited (code {self.proc.poll()})")
        answer = json.loads(line)
        if "error" in answer:
            sys.exit(f"pixmill-bench {self.mode}: {op} {path.name}: {answer['error']}")
        return answer

    def close(self):
        self.proc.stdin.close()
        self.proc.wait(timeout=30)


class Tools:
    """Runs one tool on one op and file, returning CPU seconds."""

    def __init__(self, binary, inputs):
        self.inputs = inputs
        self.kernel = Child(binary, "serve")
        self.floor = Child(binary, "floor")

    def time(self, tool, op, path):
        if tool == "pixmill":
            return self.kernel.run(op, path)["cpu_s"][0]
        if tool == "floor":
            return self.floor.run(op, path)["cpu_s"][0]
        run = vips_run if tool == "libvips" else pillow_run
        seconds, _ = timed(run, op, self.inputs[path])
        return seconds

    def close(self):
        self.kernel.close()
        self.floor.close()


# ---------------------------------------------------------------- measuring


def tools_for(op):
    return TOOLS if FLOOR_OF[op] == op else TOOLS[:3]


def rotated(items, by):
    by %= len(items)
    return items[by:] + items[:by]


def warm_up(tools, files):
    print(f"warm-up (not counted): {len(files)} file(s) x every op and tool", flush=True)
    for op in OPS:
        for path in files:
            for tool in tools_for(op):
                tools.time(tool, op, path)


def measure(tools, files, rounds):
    """totals[op][tool] = [corpus CPU seconds per round]."""
    totals = {op: {tool: [] for tool in tools_for(op)} for op in OPS}
    for r in range(rounds):
        for oi, op in enumerate(OPS):
            started = time.monotonic()
            sums = dict.fromkeys(tools_for(op), 0.0)
            for fi, path in enumerate(files):
                for tool in rotated(tools_for(op), r + oi + fi):
                    sums[tool] += tools.time(tool, op, path)
            for tool, s in sums.items():
                totals[op][tool].append(s)
            shown = "  ".join(f"{t} {s:7.3f}s" for t, s in sums.items())
            wall = time.monotonic() - started
            print(f"round {r + 1}/{rounds} {op:9} CPU over corpus: {shown}  ({wall:.0f}s wall)",
                  flush=True)
    return totals


def summarise(totals):
    rows = {}
    for op in OPS:
        med = {tool: statistics.median(v) for tool, v in totals[op].items()}
        floor = statistics.median(totals[FLOOR_OF[op]]["floor"])
        rows[op] = {
            "median_cpu_s": med,
            "floor_cpu_s": floor,
            "pixmill_vs_libvips": med["libvips"] / med["pixmill"],
            "pillow_vs_libvips": med["libvips"] / med["pillow"],
            "pixmill_over_floor": med["pixmill"] / floor,
        }
    return rows


def memory(binary, path):
    results = {}
    for op in OPS:
        out = subprocess.run(
            [binary, "mem", "--op", op, str(path)], capture_output=True, text=True
        )
        if out.returncode != 0:
            sys.exit(f"pixmill-bench mem --op {op}: {out.stderr.strip()}")
        results[op] = json.loads(out.stdout)
    return results


# ---------------------------------------------------------------- checking outputs


def jpeg_sampling(data):
    """'4:2:0', '4:4:4', ..., 'grey' from a JPEG's frame header, or the format."""
    if data[:2] != b"\xff\xd8":
        return "webp" if data[8:12] == b"WEBP" else "?"
    i = 2
    while i + 4 <= len(data):
        if data[i] != 0xFF:
            return "?"
        marker, length = data[i + 1], int.from_bytes(data[i + 2 : i + 4], "big")
        if marker in (0xC0, 0xC1, 0xC2):
            count = data[i + 9]
            if count == 1:
                return "grey"
            factors = [(data[i + 11 + 3 * c] >> 4, data[i + 11 + 3 * c] & 15) for c in range(count)]
            (yh, yv), (ch, cv) = factors[0], factors[1]
            names = {(1, 1): "4:4:4", (2, 1): "4:2:2", (2, 2): "4:2:0", (1, 2): "4:4:0"}
            return names.get((yh // ch, yv // cv), f"{factors}")
        i += 2 + length
    return "?"


def sample_outputs(tools, corpus, workdir):
    """Each tool's output of each op for the contact-sheet inputs (untimed)."""
    outputs = {}
    for name in CONTACT_FILES:
        path = corpus / name
        if not path.exists():
            continue
        buf = tools.inputs.get(path) or path.read_bytes()
        for op in OPS:
            target = workdir / f"{op}-{name}"
            tools.kernel.run(op, path, write=target)
            outputs[(name, op)] = {
                "pixmill": target.read_bytes(),
                "libvips": vips_run(op, buf),
                "pillow": pillow_run(op, buf),
            }
    return outputs


def output_checks(outputs):
    """Subsampling and output size of every tool, per op (from the sample outputs)."""
    checks = {}
    for (name, op), by_tool in outputs.items():
        for tool, data in by_tool.items():
            image = Image.open(io.BytesIO(data))
            checks.setdefault(op, {}).setdefault(tool, {})[name] = {
                "sampling": jpeg_sampling(data),
                "size": list(image.size),
                "bytes": len(data),
            }
    return checks


# ---------------------------------------------------------------- reporting


def table(rows):
    lines = [
        "| op | libvips CPU s (corpus) | libvips | pixmill | Pillow | pixmill / floor |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for op, row in rows.items():
        lines.append(
            f"| {op} | {row['median_cpu_s']['libvips']:.3f} | 1.00 "
            f"| {row['pixmill_vs_libvips']:.2f} | {row['pillow_vs_libvips']:.2f} "
            f"| {row['pixmill_over_floor']:.2f} |"
        )
    return lines


def goals(rows, mem):
    out = []
    for op, target in SPEED_GOALS.items():
        measured = rows[op]["pixmill_vs_libvips"]
        out.append((f"{op}_vs_libvips", measured, target, measured >= target))
    thumb = mem["thumbnail"]["above_mb"]
    out.append(("thumbnail_20mp_above_baseline_mb", thumb, THUMB_MB_GOAL, thumb <= THUMB_MB_GOAL))
    buffers = max(mem[op]["above_mb"] / mem[op]["full_buffer_mb"] for op in FULL_SIZE_OPS)
    out.append(("full_size_buffers", buffers, FULL_BUFFERS_GOAL, buffers <= FULL_BUFFERS_GOAL))
    return out


def goal_line(name, measured, target, ok):
    return f"goal={name} measured={measured:.2f} target={target:.2f} {'ok' if ok else 'short'}"


def machine(args):
    model = "?"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            model = line.split(":", 1)[1].strip()
            break
    return {
        "nproc": os.cpu_count(),
        "cpu": model,
        "pinned_to_cpus": sorted(os.sched_getaffinity(0)),
        "libvips": ".".join(str(pyvips.version(i)) for i in range(3)),
        "pyvips": pyvips.__version__,
        "pillow": PIL.__version__,
        "python": sys.version.split()[0],
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "build": args.build,
        "command": args.command,
    }


def chart(rows, path, build):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 4.5), dpi=110)
    xs = range(len(OPS))
    width = 0.38
    pix = [rows[op]["pixmill_vs_libvips"] for op in OPS]
    pil = [rows[op]["pillow_vs_libvips"] for op in OPS]
    b1 = ax.bar([x - width / 2 for x in xs], pix, width, label=f"pixmill ({build})", color="#2a7ab9")
    b2 = ax.bar([x + width / 2 for x in xs], pil, width, label="Pillow", color="#bbbbbb")
    ax.bar_label(b1, fmt="%.2f", fontsize=8)
    ax.bar_label(b2, fmt="%.2f", fontsize=8)
    ax.axhline(1.0, color="black", linewidth=1, label="libvips = 1.00")
    for x, op in zip(xs, OPS):
        ax.hlines(SPEED_GOALS[op], x - 0.45, x + 0.45, colors="#d62728", linestyles="dashed",
                  label="goal" if x == 0 else None)
    ax.set_xticks(list(xs), OPS)
    ax.set_ylabel("speed relative to libvips (CPU time, higher is faster)")
    ax.set_title("Kernel CPU time per image, one core, over the corpus")
    ax.legend(fontsize=8, loc="upper right")
    ax.set_ylim(0, max(pix + pil + [2.0]) * 1.18)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def centre_crop(image):
    w, h = image.size
    cw, ch = min(CROP[0], w), min(CROP[1], h)
    left, top = (w - cw) // 2, (h - ch) // 2
    return image.crop((left, top, left + cw, top + ch))


def contact_sheet(outputs, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = sorted({name for name, _ in outputs}, key=CONTACT_FILES.index)
    cols = [(name, tool) for name in names for tool in ("pixmill", "libvips")]
    fig, axes = plt.subplots(len(OPS), len(cols), figsize=(2.3 * len(cols), 2.1 * len(OPS)),
                             dpi=100, squeeze=False)
    for r, op in enumerate(OPS):
        for c, (name, tool) in enumerate(cols):
            ax = axes[r][c]
            image = Image.open(io.BytesIO(outputs[(name, op)][tool])).convert("RGB")
            ax.imshow(centre_crop(image), interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            ax.set_title(f"{op}: {tool}\n{name[:22]}", fontsize=7)
    fig.suptitle(f"Outputs, 1:1 centre crops of {CROP[0]}x{CROP[1]} (pixmill left of libvips)",
                 fontsize=9)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def markdown(report, lines, goal_lines):
    m = report["machine"]
    mem_lines = [
        "| op | baseline MB | peak MB | above baseline MB | full buffer MB (W×H×3) |",
        "|---|---:|---:|---:|---:|",
    ] + [
        f"| {op} | {r['baseline_mb']:.1f} | {r['peak_mb']:.1f} | {r['above_mb']:.1f} "
        f"| {r['full_buffer_mb']:.1f} |"
        for op, r in report["memory"].items()
    ]
    return "\n".join(
        [
            "# Kernel benchmark: latest run",
            "",
            f"Build: `{m['build']}`. Rounds: {report['rounds']}, files: {len(report['files'])}.",
            "Ratios are libvips CPU time / tool CPU time (above 1 is faster than libvips);",
            "pixmill / floor is pixmill's CPU time over the decode alone.",
            "",
            *lines,
            "",
            f"Peak memory (`pixmill-bench mem`, {report['memory_file']}):",
            "",
            *mem_lines,
            "",
            "```text",
            *goal_lines,
            "```",
            "",
            "Machine:",
            "",
            f"- nproc {m['nproc']}, CPU {m['cpu']}, pinned to CPU {m['pinned_to_cpus']}",
            f"- libvips {m['libvips']} (pyvips {m['pyvips']}), Pillow {m['pillow']}, "
            f"Python {m['python']}",
            f"- date {m['date']}",
            f"- command `{m['command']}`",
            "",
        ]
    )


def update_benchmarks_md(path, body):
    """Replaces the text between the kernel markers of BENCHMARKS.md with `body`."""
    begin, end = "<!-- kernel:begin -->", "<!-- kernel:end -->"
    text = path.read_text()
    if begin not in text or end not in text:
        print(f"warning: no kernel markers in {path}; not updated")
        return
    head, rest = text.split(begin, 1)
    tail = rest.split(end, 1)[1]
    path.write_text(f"{head}{begin}\n{body}\n{end}{tail}")


# ---------------------------------------------------------------- main


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bin", required=True, help="the pixmill-bench binary")
    parser.add_argument("--corpus", required=True, type=Path)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="1 round on a few files")
    parser.add_argument("--build", default="default", help="label: default or turbo")
    parser.add_argument("--command", default="benches/kernel.sh")
    args = parser.parse_args()

    manifest = Path(__file__).parent / "corpus" / "MANIFEST.tsv"
    listed = [line.split("\t") for line in manifest.read_text().splitlines()[1:] if line]
    names = [row[0] for row in listed if row[6] == "JPEG"]
    if args.quick:
        names = [n for n in names if n in QUICK_FILES]
        args.rounds = 1
    files = [args.corpus / n for n in names]
    missing = [f.name for f in files if not f.exists()]
    if missing:
        sys.exit(f"missing from {args.corpus}: {', '.join(missing)} (run benches/corpus.sh)")
    largest = max(listed, key=lambda row: float(row[4]) if row[6] == "JPEG" else 0)
    mem_file = args.corpus / largest[0]

    cpus = os.sched_getaffinity(0)
    if len(cpus) != 1:
        print(f"warning: not pinned to one core (CPUs {sorted(cpus)}); use kernel.sh", flush=True)

    inputs = {f: f.read_bytes() for f in files}
    tools = Tools(args.bin, inputs)
    started = time.monotonic()
    print(f"{len(files)} files, {args.rounds} round(s), ops {', '.join(OPS)}", flush=True)
    warm_up(tools, files[: 1 if args.quick else 2])
    totals = measure(tools, files, args.rounds)
    rows = summarise(totals)
    with tempfile.TemporaryDirectory() as tmp:
        outputs = sample_outputs(tools, args.corpus, Path(tmp))
    tools.close()
    print(f"memory: pixmill-bench mem on {mem_file.name}", flush=True)
    mem = memory(args.bin, mem_file)
    checks = output_checks(outputs)

    report = {
        "machine": machine(args),
        "rounds": args.rounds,
        "files": names,
        "memory_file": mem_file.name,
        "ops": rows,
        "per_round_cpu_s": totals,
        "memory": mem,
        "outputs": checks,
        "wall_s": time.monotonic() - started,
    }
    goal_list = goals(rows, mem)
    report["goals"] = [
        {"goal": g, "measured": m, "target": t, "ok": ok} for g, m, t, ok in goal_list
    ]

    lines = table(rows)
    print()
    print("\n".join(lines))
    print()
    for op, row in rows.items():
        med = row["median_cpu_s"]
        print(f"info: floor {op:9} decode alone {row['floor_cpu_s']:.3f}s, pixmill "
              f"{med['pixmill']:.3f}s = {row['pixmill_over_floor']:.2f}x floor, libvips "
              f"{med['libvips']:.3f}s = {med['libvips'] / row['floor_cpu_s']:.2f}x floor")
    print("info: floors are the kernel's own decode step for each op, run alone "
          "(pixmill_actors::transform::decode_only; see benches/kernel/src/floor.rs)")
    for op, by_tool in checks.items():
        shown = "  ".join(
            f"{tool} {','.join(sorted({v['sampling'] for v in files.values()}))}"
            for tool, files in by_tool.items()
        )
        print(f"info: output {op:9} {shown}")
        for name in by_tool["pixmill"]:
            sizes = {tool: tuple(by_tool[tool][name]["size"]) for tool in by_tool}
            if len(set(sizes.values())) > 1:
                print(f"warning: {op} {name}: output sizes differ {sizes}")
    for op, r in mem.items():
        print(f"mem {op:9} baseline {r['baseline_mb']:.1f} MB, peak {r['peak_mb']:.1f} MB, "
              f"above {r['above_mb']:.1f} MB = {r['above_mb'] / r['full_buffer_mb']:.2f} full "
              f"buffers of {r['full_buffer_mb']:.1f} MB")
    goal_lines = [goal_line(*g) for g in goal_list]
    print("\n".join(goal_lines))

    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "kernel.json").write_text(json.dumps(report, indent=2) + "\n")
    summary = markdown(report, lines, goal_lines)
    (args.out / "kernel.md").write_text(summary)
    if not args.quick:
        body = summary.split("\n", 2)[2].strip()  # without its own title
        update_benchmarks_md(Path(__file__).parent.parent / "BENCHMARKS.md", body)
    chart(rows, args.out / "kernel.png", args.build)
    if outputs:
        contact_sheet(outputs, args.out / "contact-sheet.png")
    print(f"wrote {args.out}/kernel.json, kernel.md, kernel.png, contact-sheet.png "
          f"({report['wall_s']:.0f}s)")


if __name__ == "__main__":
    main()
