# Test target for ../rules/deserialization.yaml (semgrep --test annotations). Never executed.
import ast
import json
import marshal
import pickle
import re

import yaml
from yaml import CSafeLoader, SafeLoader


def load_yaml(text, stream):
    # ruleid: secure-iot.yaml-unsafe-load
    yaml.load(text)
    # ruleid: secure-iot.yaml-unsafe-load
    yaml.load(text, Loader=yaml.Loader)
    # ruleid: secure-iot.yaml-unsafe-load
    yaml.load(text, Loader=yaml.FullLoader)
    # ruleid: secure-iot.yaml-unsafe-load
    yaml.load(text, yaml.UnsafeLoader)
    # ruleid: secure-iot.yaml-unsafe-load
    yaml.unsafe_load(text)
    # ruleid: secure-iot.yaml-unsafe-load
    yaml.full_load(stream)
    # ruleid: secure-iot.yaml-unsafe-load
    yaml.load_all(stream, Loader=yaml.FullLoader)
    # ok: secure-iot.yaml-unsafe-load
    yaml.safe_load(text)
    # ok: secure-iot.yaml-unsafe-load
    yaml.load(text, Loader=yaml.SafeLoader)
    # ok: secure-iot.yaml-unsafe-load
    yaml.load(text, Loader=yaml.CSafeLoader)
    # ok: secure-iot.yaml-unsafe-load
    yaml.load(text, Loader=SafeLoader)
    # ok: secure-iot.yaml-unsafe-load
    yaml.load(text, CSafeLoader)
    # ok: secure-iot.yaml-unsafe-load
    yaml.safe_load_all(stream)


def load_blobs(blob, fh):
    # ruleid: secure-iot.pickle-marshal-load
    pickle.loads(blob)
    # ruleid: secure-iot.pickle-marshal-load
    pickle.load(fh)
    # ruleid: secure-iot.pickle-marshal-load
    marshal.loads(blob)
    # ok: secure-iot.pickle-marshal-load
    pickle.dumps(blob)
    # ok: secure-iot.pickle-marshal-load
    json.loads(blob)


def evaluate(expr, code):
    # ruleid: secure-iot.eval-exec-non-literal
    eval(expr)
    # ruleid: secure-iot.eval-exec-non-literal
    exec(code, {})
    # ruleid: secure-iot.eval-exec-non-literal
    eval(f"1 + {expr}")
    # ruleid: secure-iot.eval-exec-non-literal
    compile(code, "<input>", "exec")
    # ok: secure-iot.eval-exec-non-literal
    eval("1 + 2")
    # ok: secure-iot.eval-exec-non-literal
    exec("import sys")
    # ok: secure-iot.eval-exec-non-literal
    ast.literal_eval(expr)
    # ok: secure-iot.eval-exec-non-literal
    re.compile(expr)
