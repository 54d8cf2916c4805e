#!/usr/bin/env bash
# Offline checks of the SAM template and the deployable artifact (`make check-template`, CI).
#
#   1. sam validate --lint      (SAM transform + cfn-lint)
#   2. cfn-lint template.yaml
#   3. checkov -f template.yaml (accepted findings are skipped in the template, with reasons)
#   4. sam build                (python3.13 on PATH, arm64, no container)
#   5. smoke test               (python3.13 imports selador.handler from the build output only and
#                                answers events/ws_connect.json and events/http_health.json; on a
#                                host that cannot run arm64 code, from an x86_64 twin build of the
#                                same template and requirements, since pydantic-core and friends
#                                ship native code)
#   6. bundle size              (zipped as `sam deploy` zips it; fails above 30 MiB)
#   7. bundle lock              (scripts/verify_bundle_lock.py: src/requirements.txt's hashes hold for
#                                the aarch64 and x86_64 cp313 wheels; the build has only locked versions)
#
# The tools live in .sam-venv, never in .venv: SAM CLI pins older boto3/pydantic/click than the
# app uses. checkov gets a venv of its own inside it because it pins boto3 lower still. Installs
# are pinned and cached by a stamp, so later runs only run the checks. Every step runs even when
# an earlier one fails; the exit status is 1 if any failed.
#
# Environment: SAM_TOOLS_PYTHON (interpreter for the tool venvs, default python3),
#              MAX_BUNDLE_MIB (default 30).
set -uo pipefail
cd "$(dirname "$0")/.."

SAM_CLI_VERSION=1.170.0
CFN_LINT_VERSION=1.58.0
CHECKOV_VERSION=3.3.30
TOOLS_PYTHON=${SAM_TOOLS_PYTHON:-python3}
MAX_BUNDLE_MIB=${MAX_BUNDLE_MIB:-30}
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
  PATH=$PY313_PATH "$TOOLS/bin/sam" build --template-file "$twin/template.yaml" --build-dir "$twin/build" \
    --cache-dir "$twin/cache" --cached --region us-west-2 >"$twin/build.log" 2>&1 ||
    { cat "$twin/build.log" >&2; return 1; }
  SMOKE_DIR=$twin/build/MainLambda
}

smoke_test() {
  [ -f "$BUILD_DIR/selador/handler.py" ] || { echo "no $BUILD_DIR/selador/handler.py (did sam build run?)" >&2; return 1; }
  find_python313 || return 1
  smoke_build_dir || return 1
  local tmp status
  tmp=$(mktemp -d)
  # A clean environment and no site-packages (-S): only what the bundle carries is importable,
  # as on Lambda. -B keeps __pycache__ out of the build directory (it would be zipped).
  env -i PATH="$PY313_PATH" HOME="$tmp" LANG=C.UTF-8 \
    PYTHONPATH="$PWD/$SMOKE_DIR" \
    AWS_REGION=us-west-2 AWS_DEFAULT_REGION=us-west-2 \
    AWS_ACCESS_KEY_ID=smoke AWS_SECRET_ACCESS_KEY=smoke \
    AWS_LAMBDA_FUNCTION_NAME=main-lambda POWERTOOLS_SERVICE_NAME=selador LOG_LEVEL=WARNING \
    CONNECTIONS_TABLE="" REQUESTS_TABLE="" SQLITE_PATH="$tmp/selador.sqlite3" \
    python3.13 -S -B - "$PWD/events" <<'PY'
import json
import pathlib
import sys
import time

events = pathlib.Path(sys.argv[1])


class Context:
    function_name = "main-lambda"
    function_version = "$LATEST"
    memory_limit_in_mb = "1024"
    invoked_function_arn = "arn:aws:lambda:us-west-2:123456789012:function:main-lambda"
    aws_request_id = "00000000-0000-4000-8000-000000000000"

    def get_remaining_time_in_millis(self):
        return 900_000


started = time.perf_counter()
from selador.handler import lambda_handler  # noqa: E402

print(f"import selador.handler: {(time.perf_counter() - started) * 1000:.0f} ms")
print(f"selador.handler from {sys.modules['selador.handler'].__file__}")
failed = False
for name in ("ws_connect", "http_health"):
    response = lambda_handler(json.loads((events / f"{name}.json").read_text()), Context())
    ok = isinstance(response, dict) and response.get("statusCode") == 200
    failed |= not ok
    print(f"{name}: {'ok' if ok else 'FAILED'} {json.dumps(response)[:200]}")
# Informational: the light routes should not have paid for the agent stack.
print("strands imported by the light routes:", "yes" if "strands" in sys.modules else "no")
sys.exit(1 if failed else 0)
PY
  status=$?
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
step "smoke test of the built artifact" smoke_test
step "bundle size (<= ${MAX_BUNDLE_MIB} MiB zipped)" bundle_size
step "bundle lock: wheel hashes (aarch64, x86_64), built versions" "$TOOLS/bin/python" scripts/verify_bundle_lock.py "$BUILD_DIR"

echo
echo "==> summary ($(elapsed "$total_start"))"
printf '  %s\n' "${summary[@]}"
if [ ${#failures[@]} -ne 0 ]; then
  echo "failed: ${failures[*]}" >&2
  exit 1
fi
