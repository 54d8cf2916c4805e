#!/usr/bin/env bash
# Offline checks of the SAM template and the deployable artifact (`make check-template`, CI).
#
#   1. sam validate --lint      (SAM transform + cfn-lint)
#   2. cfn-lint template.yaml
#   3. checkov -f template.yaml (accepted findings are skipped in the template, with reasons)
#   4. sam build                (python3.13 on PATH, arm64, no container; BuildMethod makefile:
#                                src/Makefile → src/lambda_bundle.py)
#   5. artifact contents        (no selador/local, none of the left-out distributions, only the
#                                kept botocore models, arm64 native code: lambda_bundle.py --verify)
#   6. smoke test               (scripts/smoke_artifact.py: python3.13 -S runs every kind of route
#                                from the build output only, AWS stubbed, and fails if a left-out
#                                module is even attempted or a shipped package is never imported;
#                                -X importtime is checked the same way. On a host that cannot run
#                                arm64 code, from an x86_64 twin build of the same template and
#                                requirements, since pydantic-core and friends ship native code)
#   7. bundle size              (zipped as `sam deploy` zips it; fails above 15 MiB)
#   8. bundle lock              (scripts/verify_bundle_lock.py: src/requirements.txt's hashes hold for
#                                the aarch64 and x86_64 cp313 wheels; the build has only locked versions)
#
# The tools live in .sam-venv, never in .venv: SAM CLI pins older boto3/pydantic/click than the
# app uses. checkov gets a venv of its own inside it because it pins boto3 lower still. Installs
# are pinned and cached by a stamp, so later runs only run the checks. Every step runs even when
# an earlier one fails; the exit status is 1 if any failed.
#
# Environment: SAM_TOOLS_PYTHON (interpreter for the tool venvs, default python3),
#              MAX_BUNDLE_MIB (default 15).
set -uo pipefail
cd "$(dirname "$0")/.."

SAM_CLI_VERSION=1.170.0
CFN_LINT_VERSION=1.58.0
CHECKOV_VERSION=3.3.30
TOOLS_PYTHON=${SAM_TOOLS_PYTHON:-python3}
MAX_BUNDLE_MIB=${MAX_BUNDLE_MIB:-15}
TOOLS=.sam-venv
CHECKOV_VENV=$TOOLS/checkov
STAMP=$TOOLS/.installed
WANT="aws-sam-cli==$SAM_CLI_VERSION cfn-lint==$CFN_LINT_VERSION checkov==$CHECKOV_VERSION"
BUILD_DIR=.aws-sam/build/MainLambda
BUNDLE=.aws-sam/main-lambda.zip

export SAM_CLI_TELEMETRY=0          # no telemetry prompt or upload (no network here anyway)
export AWS_DEFAULT_REGION=${AWS_DEFAULT_REGION:-us-west-2}
export PIP_DISABLE_PIP_VERSION_CHECK=1

failures=()
summary=()

now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f s", b - a }'; }

# step NAME COMMAND...: run, time and record one check.
step() {
  local name=$1 start status
  shift
  echo
  echo "==> $name"
  start=$(now)
  "$@"
  status=$?
  if [ "$status" -eq 0 ]; then
    summary+=("ok    $name ($(elapsed "$start"))")
  else
    summary+=("FAIL  $name ($(elapsed "$start"), exit $status)")
    failures+=("$name")
  fi
  return 0
}

install_tools() {
  if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$WANT" ]; then
    echo "cached: $WANT"
    return 0
  fi
  rm -rf "$TOOLS"
  "$TOOLS_PYTHON" -m venv "$TOOLS" &&
    "$TOOLS/bin/python" -m pip install --quiet --upgrade pip &&
    "$TOOLS/bin/python" -m pip install --quiet "aws-sam-cli==$SAM_CLI_VERSION" "cfn-lint==$CFN_LINT_VERSION" &&
    "$TOOLS_PYTHON" -m venv "$CHECKOV_VENV" &&
    "$CHECKOV_VENV/bin/python" -m pip install --quiet --upgrade pip &&
    "$CHECKOV_VENV/bin/python" -m pip install --quiet "checkov==$CHECKOV_VERSION" &&
    echo "$WANT" >"$STAMP" &&
    echo "installed: $WANT"
}

# The function's runtime must be on PATH for `sam build` (it looks for `python3.13`). pyenv's real
# interpreter directory comes first because a pyenv *shim* named python3.13 may be on PATH without
# that version being active, and then it fails.
find_python313() {
  local root dir
  if command -v pyenv >/dev/null 2>&1; then
    root=$(pyenv root)
    for dir in $(ls -d "$root"/versions/3.13.* 2>/dev/null | sort -V -r); do
      if [ -x "$dir/bin/python3.13" ]; then
        PY313_PATH="$dir/bin:$PATH"
        return 0
      fi
    done
  fi
  if command -v python3.13 >/dev/null 2>&1 && python3.13 -c 'import sys' >/dev/null 2>&1; then
    PY313_PATH=$PATH
    return 0
  fi
  echo "python3.13 not found: put it on PATH or install it with pyenv (pyenv install 3.13)." >&2
  echo "sam build needs the function's runtime, python3.13, to resolve arm64 wheels." >&2
  return 1
}

sam_build() {
  find_python313 || return 1
  echo "python3.13: $(PATH=$PY313_PATH command -v python3.13)"
  PATH=$PY313_PATH "$TOOLS/bin/sam" build --region us-west-2
}

# The directory the smoke test imports from: the arm64 artifact itself on an arm64 host; elsewhere
# an x86_64 twin built by SAM from a copy of the template that differs only in Architectures (and
# an absolute CodeUri, as the copy lives under .aws-sam). Same code, same requirements, same pins.
smoke_build_dir() {
  case "$(uname -m)" in
    aarch64 | arm64)
      SMOKE_DIR=$BUILD_DIR
      return 0
      ;;
  esac
  local twin=.aws-sam/smoke-x86_64
  mkdir -p "$twin"
  sed -e 's|^\(      CodeUri: \)src/$|\1'"$PWD"'/src/|' -e 's|^\(        - \)arm64$|\1x86_64|' \
    template.yaml >"$twin/template.yaml"
  if ! grep -q "CodeUri: $PWD/src/" "$twin/template.yaml" || ! grep -q -- "- x86_64$" "$twin/template.yaml"; then
    echo "could not derive the x86_64 twin template (CodeUri or Architectures layout changed)" >&2
    return 1
  fi
  echo "host is $(uname -m): smoke-testing an x86_64 twin build (the arm64 artifact cannot load here)"
  # src/Makefile cannot see the template's Architectures: tell it.
  LAMBDA_ARCHITECTURE=x86_64 PATH=$PY313_PATH "$TOOLS/bin/sam" build --template-file "$twin/template.yaml" --build-dir "$twin/build" \
    --cache-dir "$twin/cache" --cached --region us-west-2 >"$twin/build.log" 2>&1 ||
    { cat "$twin/build.log" >&2; return 1; }
  SMOKE_DIR=$twin/build/MainLambda
}

artifact_contents() {
  [ -f "$BUILD_DIR/selador/handler.py" ] || { echo "no $BUILD_DIR/selador/handler.py (did sam build run?)" >&2; return 1; }
  find_python313 || return 1
  PATH=$PY313_PATH python3.13 -B src/lambda_bundle.py --verify --architecture arm64 "$BUILD_DIR"
}

smoke_test() {
  [ -f "$BUILD_DIR/selador/handler.py" ] || { echo "no $BUILD_DIR/selador/handler.py (did sam build run?)" >&2; return 1; }
  find_python313 || return 1
  smoke_build_dir || return 1
  local tmp status importtime=.aws-sam/smoke-importtime.log
  tmp=$(mktemp -d)
  # A clean environment and no site-packages (-S): only what the bundle carries is importable,
  # as on Lambda. -B keeps __pycache__ out of the build directory (it would be zipped). The
  # script sets the function's environment itself (Bedrock model and KB, async runs, JWT auth).
  env -i PATH="$PY313_PATH" HOME="$tmp" LANG=C.UTF-8 TMPDIR="$tmp" PYTHONPATH="$PWD/$SMOKE_DIR" \
    python3.13 -S -B -X importtime scripts/smoke_artifact.py "$PWD/$SMOKE_DIR" "$PWD/events" \
    --report .aws-sam/smoke-report.json 2>"$importtime"
  status=$?
  grep -v '^import time:' "$importtime" >&2
  # The same question asked of -X importtime: no left-out module was imported.
  PATH=$PY313_PATH python3.13 -B - "$importtime" <<'PY' || status=1
import importlib.util
import sys

spec = importlib.util.spec_from_file_location("lambda_bundle", "src/lambda_bundle.py")
bundle = importlib.util.module_from_spec(spec)
spec.loader.exec_module(bundle)
left_out = {name for names in bundle.EXCLUDED_DISTRIBUTIONS.values() for name in names}
modules = [
    line.rsplit("|", 1)[1].strip()
    for line in open(sys.argv[1], encoding="utf-8")
    if line.startswith("import time:") and "|" in line and not line.rstrip().endswith("imported package")
]
found = sorted({m for m in modules if m.split(".")[0] in left_out})
print(f"-X importtime: {len(modules)} modules imported, left-out ones among them: {found or 'none'}")
sys.exit(1 if found else 0)
PY
  rm -rf "$tmp"
  return $status
}

bundle_size() {
  [ -d "$BUILD_DIR" ] || { echo "no $BUILD_DIR (did sam build run?)" >&2; return 1; }
  # ZIP_DEFLATED at the default level, file by file: what `sam deploy` uploads.
  "$TOOLS/bin/python" - "$BUILD_DIR" "$BUNDLE" "$MAX_BUNDLE_MIB" <<'PY'
import os
import sys
import zipfile

root, target, limit_mib = sys.argv[1], sys.argv[2], float(sys.argv[3])
unzipped = 0
with zipfile.ZipFile(target, "w", compression=zipfile.ZIP_DEFLATED) as bundle:
    for directory, dirs, files in os.walk(root):
        dirs.sort()
        for name in sorted(files):
            path = os.path.join(directory, name)
            unzipped += os.path.getsize(path)
            bundle.write(path, os.path.relpath(path, root))
size = os.path.getsize(target)
mib = size / 2**20
print(f"bundle: {target}: {mib:.2f} MiB zipped ({size} bytes), {unzipped / 2**20:.1f} MiB unzipped")
print(f"limit: {limit_mib:g} MiB -> {'ok' if mib <= limit_mib else 'TOO LARGE'}")
sys.exit(0 if mib <= limit_mib else 1)
PY
}

total_start=$(now)
step "install SAM CLI, cfn-lint, checkov into $TOOLS" install_tools
if [ ${#failures[@]} -ne 0 ]; then
  echo "tool installation failed; nothing else can run" >&2
  exit 1
fi
step "sam validate --lint" "$TOOLS/bin/sam" validate --lint --region us-west-2 --template template.yaml
step "cfn-lint template.yaml" "$TOOLS/bin/cfn-lint" template.yaml
step "checkov -f template.yaml" "$CHECKOV_VENV/bin/checkov" -f template.yaml --framework cloudformation \
  --quiet --compact --skip-download
step "sam build (python3.13, arm64)" sam_build
step "artifact contents (runtime package only)" artifact_contents
step "smoke test of the built artifact (every route)" smoke_test
step "bundle size (<= ${MAX_BUNDLE_MIB} MiB zipped)" bundle_size
step "bundle lock: wheel hashes (aarch64, x86_64), built versions" "$TOOLS/bin/python" scripts/verify_bundle_lock.py "$BUILD_DIR"

echo
echo "==> summary ($(elapsed "$total_start"))"
printf '  %s\n' "${summary[@]}"
if [ ${#failures[@]} -ne 0 ]; then
  echo "failed: ${failures[*]}" >&2
  exit 1
fi
