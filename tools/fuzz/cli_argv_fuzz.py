#!/usr/bin/env python3
"""The whole command line under random argument vectors (tools/fuzz-all target `argv`).

Builds argument vectors from the binary's own vocabulary (the commands in `leitner --help`,
each command's options and KIND choices in `leitner help COMMAND`), fills them with values
from hostile pools (negative, huge, non-numeric and empty numbers; missing, /dev/zero, a
directory, a symbolic-link loop, a file for paths) and runs the release binary in a fresh
directory. A run that outlives --run-seconds gets SIGINT and must then stop within 15 s.

A run fails the fuzzer when it dies by a signal it was not sent (a trap, SIGSEGV, SIGABRT),
exits with a status other than 0, 1, 2 or 130 (after SIGINT), exits non-zero without a
message on stderr, prints a Swift runtime failure, hangs after SIGINT, or writes into the
sentinel directory it was only given to read. Failing vectors are kept in OUT/argv-failures/.

Usage: cli_argv_fuzz.py BINARY SECONDS OUTDIR [--seed N] [--run-seconds S]
"""
import argparse, os, random, re, shutil, signal, subprocess, sys, tempfile, time

def vocabulary(binary):
    top = subprocess.run([binary, "--help"], capture_output=True, text=True).stdout
    commands = re.findall(r"^  ([a-z][a-z-]+)\s{2,}", top, re.M)
    table = {}
    for command in commands:
        text = subprocess.run([binary, "help", command], capture_output=True, text=True).stdout
        options = []
        for match in re.finditer(r"^  (--[a-z0-9-]+)(?: ([^ ].*?))?\s{2,}(.*)$", text, re.M):
            name, metavar, help_text = match.group(1), (match.group(2) or "").strip(), match.group(3)
            choices = [c.strip() for c in metavar.split("|")] if "|" in metavar else []
            choices += re.findall(r"\b([a-z][a-z0-9+-]*(?::[A-Z]+)*)\s*\|", help_text)
            options.append((name, metavar, choices))
        table[command] = options
    return table

def pools(root, sandbox):
    subset = os.path.join(root, "data", "fashion-mnist-subset")
    loop = os.path.join(sandbox, "loop")
    if not os.path.lexists(loop):
        os.symlink(loop + "2", loop); os.symlink(loop, loop + "2")
    afile = os.path.join(sandbox, "file.txt")
    open(afile, "w").write("not a dataset\n")
    numbers = ["-1", "0", "1", "2", "3", "7", "64", "0.5", "1e-9", "1e9", "nan", "inf", "-inf", "2147483648",
               "9223372036854775807", "99999999999999999999", "abc", "", " 3", "0x10", "1.5e300", "-0"]
    paths = ["missing", "/dev/zero", "/dev/null", sandbox, loop, afile, subset, subset + "/train.pack", "", "/",
             "/proc/self/mem", "out/../../x", "a" * 300]
    words = ["", "all", "none", "last:2", "last:0", "last:-1", "bias-only", "5-9", "9-5", "0,2,4", "3", "cnn-s",
             "mlp", "resnet8", "rpi5", "x86_64-avx2", "pdp11", "full", "ies", "dihcl", "sgd", "adamw", "cosine",
             "step:1:0.5", "exp:0", "cyclic:0", "crop+flip", "pmic", "hwmon", "rapl", "model", "20:2", "0:0", "-5:1"]
    return numbers, paths, words, subset

def vector(rng, table, numbers, paths, words, subset):
    command = rng.choice(list(table))
    args = [command]
    if command in ("pack",):
        args.append(rng.choice(["idx", "cifar10", "cifar100", "images", "csv", "info", "verify", "zip", ""]))
    if command in ("eval", "pack") or rng.random() < 0.1:
        args.append(rng.choice(paths))
    options = table[command]
    # Keep the work small most of the time so the fuzzer explores parsing and checking.
    if command in ("train", "finetune", "compare", "energy-run", "parity", "eval") and rng.random() < 0.7:
        args += ["--data", subset]
        if command != "eval": args += ["--train-subset", rng.choice(["50", "200", "0", "-3", "100000"]), "--epochs", rng.choice(["1", "2", "0"])]
        args += ["--test-limit", "50"]
    for _ in range(rng.randint(0, 6)):
        if not options or rng.random() < 0.05:
            args.append(rng.choice(["--", "-", "--unknown", "--out=", "-x", "help"]))
            continue
        name, metavar, choices = rng.choice(options)
        if not metavar:
            args.append(name if rng.random() < 0.9 else name + "=1")
            continue
        if choices and rng.random() < 0.6:
            value = rng.choice(choices)
        elif re.search(r"FILE|DIR|PATH|CSV|LOG|CKPT", metavar):
            value = rng.choice(paths)
        elif re.search(r"\b(N|M|S|MB|R|RATE|W|F|B|P|EPOCHS|DELTA|MBPS|SECONDS|K)\b", metavar):
            value = rng.choice(numbers)
        else:
            value = rng.choice(words + numbers)
        if rng.random() < 0.2:
            args.append(name + "=" + value)
        else:
            args += [name, value] if rng.random() > 0.05 else [name]
    if rng.random() < 0.8 and command not in ("help", "boards", "doctor", "selftest", "bench"):
        args += ["--out", "out"]
    if rng.random() < 0.5 and command in ("train", "finetune", "compare", "energy-run"):
        args += ["--meter", "none"]
    return args

def snapshot(directory):
    state = {}
    for base, dirs, files in os.walk(directory):
        for name in dirs + files:
            path = os.path.join(base, name)
            try: state[path] = os.lstat(path).st_mtime_ns
            except OSError: pass
    return state

def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("binary"); parser.add_argument("seconds", type=float); parser.add_argument("outdir")
    parser.add_argument("--seed", type=int, default=int(time.time()))
    parser.add_argument("--run-seconds", type=float, default=4.0)
    options = parser.parse_args()
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    binary = os.path.abspath(options.binary)
    rng = random.Random(options.seed)
    table = vocabulary(binary)
    if len(table) < 8 or sum(len(o) for o in table.values()) < 50:
        sys.exit(f"cli_argv_fuzz: the vocabulary read from {binary} --help is too small: {table}")
    failures_dir = os.path.join(options.outdir, "argv-failures")
    os.makedirs(failures_dir, exist_ok=True)
    sandbox = tempfile.mkdtemp(prefix="leitner-argv-sentinel-")
    numbers, paths, words, subset = pools(root, sandbox)
    sentinel = snapshot(sandbox)
    env = dict(os.environ, SWIFT_BACKTRACE="enable=no")
    deadline = time.time() + options.seconds
    runs = interrupted = failures = 0
    statuses = {}
    while time.time() < deadline:
        args = vector(rng, table, numbers, paths, words, subset)
        cwd = tempfile.mkdtemp(prefix="leitner-argv-")
        process = subprocess.Popen([binary] + args, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                   stdin=subprocess.DEVNULL)
        sent = False
        try:
            out, err = process.communicate(timeout=options.run_seconds)
        except subprocess.TimeoutExpired:
            sent = True
            interrupted += 1
            process.send_signal(signal.SIGINT)
            try:
                out, err = process.communicate(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill(); out, err = process.communicate()
                err += b"\n[fuzzer] still running 15 s after SIGINT"
        runs += 1
        code = process.returncode
        statuses[code] = statuses.get(code, 0) + 1
        text = err.decode("utf-8", "replace")
        problems = []
        if code < 0 and not (sent and code == -signal.SIGINT):
            problems.append(f"killed by signal {-code}")
        if code > 0 and code not in (1, 2, 130):
            problems.append(f"exit status {code}")
        if code not in (0,) and code > 0 and not text.strip():
            problems.append("non-zero exit without a message")
        if "Fatal error" in text or "runtime failure" in text or "[fuzzer] still running" in text:
            problems.append("runtime failure or hang: " + text.strip().splitlines()[-1][:200])
        if sent and code not in (130, 0, 1, -signal.SIGINT):
            problems.append(f"status {code} after SIGINT")
        if snapshot(sandbox) != sentinel:
            problems.append("wrote into the sentinel directory " + sandbox)
            shutil.rmtree(sandbox, ignore_errors=True)
            sandbox = tempfile.mkdtemp(prefix="leitner-argv-sentinel-")
            numbers, paths, words, subset = pools(root, sandbox)
            sentinel = snapshot(sandbox)
        if problems:
            failures += 1
            with open(os.path.join(failures_dir, f"failure-{failures}.txt"), "w") as f:
                f.write("argv: " + " ".join(repr(a) for a in args) + "\n" + "; ".join(problems) + "\n--- stderr\n" + text[-4000:])
            print(f"cli_argv_fuzz: FAIL {'; '.join(problems)}\n  leitner {' '.join(repr(a) for a in args)}\n  {text.strip()[-300:]}",
                  file=sys.stderr)
        shutil.rmtree(cwd, ignore_errors=True)
    shutil.rmtree(sandbox, ignore_errors=True)
    summary = ", ".join(f"{k}: {v}" for k, v in sorted(statuses.items()))
    print(f"stat::number_of_executed_units: {runs}")
    print(f"cli_argv_fuzz: {runs} argument vectors (seed {options.seed}), {interrupted} interrupted by SIGINT, "
          f"exit statuses {{{summary}}}, {failures} failures")
    sys.exit(1 if failures else 0)

if __name__ == "__main__":
    main()
