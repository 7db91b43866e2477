"""Per-scene agreement table between the oracles (and rastlit, if importable).

    python tests/gl_agreement_report.py            # markdown table on stdout

Columns for each comparison "A vs B":

* pixels, covered (pixels with a non-zero id in B; for "vs ref" the pixels
  with a definite winner in the reference),
  ambiguous (reference's ambiguous set, never compared for ids),
* id_mism: pixels outside the ambiguous set whose triangle ids differ,
* max |du|, |dv|, |dz|: largest differences of u, v, z/w between A and B where
  both have the same non-zero id,
* A/exact: for A's every covered pixel (for GL: every unambiguous one), the worst ratio of
  |A - exact| to the limit tol + grad_tol_px * |screen gradient| used by the
  tests (<= 1 passes), with the float32 limits (tol 1e-4, 2e-5 px) for GL and
  for rastlit float32 and the float64 limits (1e-8, 1e-10 px) for rastlit float64.

``agreement_report()`` returns the rows as dicts; missing GL or rastlit are
reported and skipped.
"""

import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
# scenes.py imports the shared scene module, benchmarks/bench_scenes.py (pytest: pyproject's pythonpath)
sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "benchmarks"))

import gl_oracle  # noqa: E402
import reference as R  # noqa: E402
import scenes as S  # noqa: E402

LIMITS = {"float32": dict(tol=1e-4, grad_tol_px=2e-5), "float64": dict(tol=1e-8, grad_tol_px=1e-10)}


def _rastlit():
    try:
        import rastlit  # noqa: F401
        import torch  # noqa: F401
    except ImportError as e:
        return None, f"rastlit not importable ({e}); reporting reference vs GL only"
    return rastlit, None


def _row(scene, label, test, ref, amb, exact_stats):
    c = R.compare_rast(test, ref, amb)
    return dict(scene=scene.name, comparison=label, pixels=c["pixels"], covered=c["covered"],
                ambiguous=c["ambiguous"], id_mism=c["id_mismatch"], max_du=c["max_du"],
                max_dv=c["max_dv"], max_dz=c["max_dz"],
                over_limit=None if exact_stats is None else exact_stats["max_err_over_limit"],
                values_bad=None if exact_stats is None else exact_stats["values_bad"])


def agreement_report(print_table=True):
    notes = []
    gl_ok = gl_oracle.gl_available()
    if not gl_ok:
        notes.append(gl_ok.reason)
    rastlit, why = _rastlit()
    if why:
        notes.append(why)
    rows = []
    t0 = time.time()
    for s in S.all_scenes():
        with np.errstate(all="ignore"):
            ref, db, amb = R.reference_rasterize(s.pos, s.tri, s.H, s.W, s.ranges)
        g = None
        if gl_ok:
            g = gl_oracle.gl_rasterize(s.pos, s.tri, s.H, s.W, s.ranges)
            ex = R.exact_at(s.pos, s.tri, s.H, s.W, g, s.ranges)
            rows.append(_row(s, "GL vs ref", g, ref, amb,
                             R.compare_values(g, ex, mask=~amb, **LIMITS["float32"])))
        if rastlit is not None:
            import torch

            for dt in ("float32", "float64"):
                pos = torch.from_numpy(np.asarray(s.pos, np.float64)).to(getattr(torch, dt))
                rg = None if s.ranges is None else torch.from_numpy(s.ranges)
                k, kdb = rastlit.rasterize(pos, torch.from_numpy(s.tri), (s.H, s.W), ranges=rg, grad_db=True)
                k = k.detach().cpu().numpy().astype(np.float64)
                with np.errstate(all="ignore"):
                    ek = R.exact_at(s.pos, s.tri, s.H, s.W, k, s.ranges)
                vs = R.compare_values(k, ek, kdb.detach().cpu().numpy(), **LIMITS[dt])
                rows.append(_row(s, f"rastlit {dt} vs ref", k, ref, amb, vs))
                if g is not None:
                    rows.append(_row(s, f"rastlit {dt} vs GL", k, g, amb, None))
    if print_table:
        for n in notes:
            print(f"note: {n}")
        if gl_ok:
            info = gl_oracle.gl_info()
            print(f"GL: {info.get('renderer')} / {info.get('version')}, depth {info.get('depth_bits')}-bit float")
        hdr = ["scene", "comparison", "pixels", "covered", "ambiguous", "id_mism", "max|du|", "max|dv|",
               "max|dz|", "A/exact (<=1 ok)"]
        print("| " + " | ".join(hdr) + " |")
        print("|" + "---|" * len(hdr))
        for r in rows:
            ol = "-" if r["over_limit"] is None else f"{r['over_limit']:.3f} ({r['values_bad']} bad)"
            print(f"| {r['scene']} | {r['comparison']} | {r['pixels']} | {r['covered']} | {r['ambiguous']} | "
                  f"{r['id_mism']} | {r['max_du']:.1e} | {r['max_dv']:.1e} | {r['max_dz']:.1e} | {ol} |")
        print(f"({time.time() - t0:.1f} s)")
    return rows


if __name__ == "__main__":
    agreement_report()
