# Test target for ../rules/command-injection.yaml (semgrep --test annotations). Never executed.
import asyncio
import os
import subprocess


def shells(cmd, ref):
    # ruleid: secure-iot.subprocess-shell-true
    subprocess.call(cmd, shell=True)
    # ruleid: secure-iot.subprocess-shell-true
    subprocess.run(f"cosign verify {ref}", shell=True, check=True)
    # ruleid: secure-iot.subprocess-shell-true
    subprocess.Popen(cmd, shell=1)
    # ruleid: secure-iot.subprocess-shell-true
    subprocess.check_output(cmd, text=True, shell=True)
    # ok: secure-iot.subprocess-shell-true
    subprocess.run(["cosign", "verify", ref], check=True)
    # ok: secure-iot.subprocess-shell-true
    subprocess.run(["cosign", "verify", ref], shell=False, check=True)


def implicit_shells(cmd):
    # ruleid: secure-iot.os-system-shell
    os.system(cmd)
    # ruleid: secure-iot.os-system-shell
    os.popen("ls " + cmd)
    # ruleid: secure-iot.os-system-shell
    subprocess.getoutput(cmd)
    # ruleid: secure-iot.os-system-shell
    asyncio.create_subprocess_shell(cmd)
    # ok: secure-iot.os-system-shell
    asyncio.create_subprocess_exec("ls", cmd)
    # ok: secure-iot.os-system-shell
    os.path.join(cmd, "x")
