#!/usr/bin/env python3
"""Summary of an Nsight Compute per-instruction (SASS) source page.

usage: ncu_sass_summary.py SOURCE.csv

SOURCE.csv comes from the GPU machine, e.g. for the forward:
  ncu --kernel-name regex:attn_fwd --launch-skip 1 --launch-count 1 --set full \
      --import-source no --page source --print-source sass --csv \
      python3 tools/gpu/profile_bwd.py BUNDLE --fwd --d 128 --n 4096 --causal 1 --iters 1
(regex:attn_bwd_main without --fwd for the backward). Prints the
instructions with excess shared-memory wavefronts (bank conflicts), the
warp-stall samples per opcode and the 25 instructions with the most samples
(docs/results/h100/ncu/ holds the summaries quoted in docs/tensor-cores.md).
"""
import csv,sys,collections
if len(sys.argv) != 2:
    sys.exit(__doc__)
rows=list(csv.reader(open(sys.argv[1])))
h=[i for i,r in enumerate(rows) if r and r[0]=="Address"][0]
hdr=rows[h]; data=[dict(zip(hdr,r)) for r in rows[h+1:] if len(r)==len(hdr)]
def f(x):
    try: return float(x)
    except: return 0.0
tot=sum(f(d["Warp Stall Sampling (All Samples)"]) for d in data)
print("instructions",len(data),"samples",tot)
# excess wavefronts
ex=[(f(d["L1 Wavefronts Shared Excessive"]),i,d["Source"].strip()) for i,d in enumerate(data) if f(d["L1 Wavefronts Shared Excessive"])>0]
ex.sort(reverse=True)
print("excess shared wavefronts total", sum(e[0] for e in ex))
for e in ex[:12]: print("  EXC %12d @%d %s | wavefronts %s ideal %s" % (e[0],e[1],e[2][:60], data[e[1]]["L1 Wavefronts Shared"], data[e[1]]["L1 Wavefronts Shared Ideal"]))
# stall by opcode
byop=collections.Counter(); sb=collections.Counter()
for d in data:
    src=d["Source"].strip(); op=src.split()[1] if src.startswith("@") else src.split()[0] if src else "?"
    byop[op]+=f(d["Warp Stall Sampling (All Samples)"]); sb[op]+=f(d["stall_short_sb"])
print("samples by opcode:", [(k,int(v)) for k,v in byop.most_common(14)])
print("short_sb by opcode (at the stalled instr):", [(k,int(v)) for k,v in sb.most_common(10)])
top=sorted(range(len(data)),key=lambda i:-f(data[i]["Warp Stall Sampling (All Samples)"]))[:25]
for i in sorted(top):
    d=data[i]; print("  @%4d %6d ssb %5d wait %5d %s" % (i,f(d["Warp Stall Sampling (All Samples)"]),f(d["stall_short_sb"]),f(d["stall_wait"]),d["Source"].strip()[:70]))
