#!/usr/bin/env python3
# Adds lock entries for optional platform packages (other OSes/CPUs) that the
# registry mirror here does not serve: without them `npm ci` refuses the lock
# as "out of sync". Run after every `npm install`: python3 .ci/fix-lock.py package-lock.json
import json,sys,re
p=sys.argv[1]
lock=json.load(open(p))
pk=lock["packages"]
added=[]
def platform(name):
    n=name.split("/")[-1]
    os_=cpu=libc=None
    for o in ["darwin","win32","android","linux","freebsd","openbsd","sunos","aix","netbsd"]:
        if o in n: os_=o
    for c in ["arm64","x64","amd64","ia32","arm","riscv64","ppc64","s390x","loong64","mips64el"]:
        if re.search(r'(^|-)'+c+r'($|-)',n): cpu={"amd64":"x64"}.get(c,c); break
    if "musl" in n: libc="musl"
    return os_,cpu,libc
for key,meta in list(pk.items()):
    for dep,ver in (meta.get("optionalDependencies") or {}).items():
        base = key + "/node_modules/" + dep if key else "node_modules/"+dep
        top = "node_modules/"+dep
        if base in pk or top in pk: continue
        os_,cpu,libc=platform(dep)
        entry={"version":ver,"optional":True}
        if meta.get("dev"): entry["dev"]=True
        if os_: entry["os"]=[os_]
        if cpu: entry["cpu"]=[cpu]
        if libc: entry["libc"]=[libc]
        pk[top]=entry
        added.append(dep+"@"+ver)
lock["packages"]=dict(sorted(pk.items(), key=lambda kv: (kv[0]!="", kv[0])))
json.dump(lock,open(p,"w"),indent=2); open(p,"a").write("\n")
print("added",added)
