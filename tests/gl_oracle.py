"""OpenGL oracle: rasterize with a real GL implementation (moderngl + EGL).

On the development machines this is Mesa llvmpipe (software), but any
OpenGL 4.3 core implementation reachable through EGL works.  The output has
the same layout as rastlit: ``rast[b, i, j] = (u, v, z/w, triangle_id + 1)``,
row 0 = bottom row (glReadPixels order), zeros on background.

How it is drawn (one view at a time):

* the view's triangles are de-indexed: each triangle's three vertices get the
  barycentric attribute (1,0), (0,1), (0,0), interpolated with the default
  ``smooth`` (perspective-correct) qualifier;
* ``gl_Position`` is the clip-space position unchanged, so GL's own clipper
  handles w <= 0, the near plane z = -w and the far plane z = w;
* triangle id = ``gl_PrimitiveID`` + the view's first global triangle index;
* z/w = ``2 * gl_FragCoord.z - 1`` (default depth range [0, 1]);
* a 32-bit float depth renderbuffer (GL_DEPTH_COMPONENT32F, attached with raw
  GL through ctypes because moderngl's depth textures are 24-bit), cleared to
  1.0, depth test GL_LESS, so on an exact depth tie the earlier (smaller)
  triangle index wins;
* an RGBA32F colour attachment cleared to zero, viewport (0, 0, W, H), no
  culling, no blending, no multisampling; triangles drawn in index order.

Known GL-specific behaviour: a fragment whose depth is exactly 1.0 (on the
far plane) fails GL_LESS against the cleared depth of 1.0 and is not drawn,
although the far plane is inclusive for clipping.  The reference marks such
pixels ambiguous (see ``clip_tol`` in reference.py).
"""

from __future__ import annotations

import ctypes

import numpy as np

try:  # works both as part of a package and as a plain module on sys.path
    from .reference import views_of
except ImportError:
    from reference import views_of

__all__ = ["gl_available", "gl_unavailable_reason", "gl_rasterize", "gl_info", "GLStatus"]

_STATE = None  # module-level cache: one context per process
_ERROR = None

GL_FRAMEBUFFER = 0x8D40
GL_RENDERBUFFER = 0x8D41
GL_DEPTH_ATTACHMENT = 0x8D00
GL_DEPTH_COMPONENT32F = 0x8CAC
GL_FRAMEBUFFER_COMPLETE = 0x8CD5
GL_FRAMEBUFFER_ATTACHMENT_DEPTH_SIZE = 0x8216
GL_FRAMEBUFFER_ATTACHMENT_COMPONENT_TYPE = 0x8211
GL_FLOAT = 0x1406
GL_DEPTH_BUFFER_BIT = 0x00000100
GL_COLOR_BUFFER_BIT = 0x00004000
GL_DEPTH_TEST = 0x0B71
GL_CULL_FACE = 0x0B44
GL_BLEND = 0x0BE2
GL_DITHER = 0x0BD0
GL_MULTISAMPLE = 0x809D
GL_DEPTH_CLAMP = 0x864F
GL_LESS = 0x0201
GL_TRUE = 1
GL_DEPTH_COMPONENT = 0x1902

_VS = """
#version 430 core
in vec4 in_pos;
in vec2 in_bary;
smooth out vec2 v_bary;
void main() {
    gl_Position = in_pos;
    v_bary = in_bary;
}
"""

_FS = """
#version 430 core
uniform int id_offset;
smooth in vec2 v_bary;
layout(location = 0) out vec4 frag;
void main() {
    frag = vec4(v_bary.x, v_bary.y, 2.0 * gl_FragCoord.z - 1.0,
                float(gl_PrimitiveID + id_offset + 1));
}
"""


class GLStatus:
    """Truthy iff GL works; also unpacks as ``ok, reason = gl_available()``."""

    def __init__(self, ok, reason):
        self.ok = bool(ok)
        self.reason = reason

    def __bool__(self):
        return self.ok

    def __iter__(self):
        return iter((self.ok, self.reason))

    def __repr__(self):
        return f"GLStatus(ok={self.ok}, reason={self.reason!r})"


def _load_gl():
    last = None
    for name in ("libOpenGL.so.0", "libGL.so.1", "libOpenGL.so", "libGL.so"):
        try:
            return ctypes.CDLL(name)
        except OSError as e:  # pragma: no cover - depends on the machine
            last = e
    raise OSError(f"could not load an OpenGL library: {last}")


def _init():
    global _STATE, _ERROR
    if _STATE is not None or _ERROR is not None:
        return
    try:
        import moderngl

        ctx = moderngl.create_standalone_context(backend="egl", require=430)
        gl = _load_gl()
        gl.glCheckFramebufferStatus.restype = ctypes.c_uint
        prog = ctx.program(vertex_shader=_VS, fragment_shader=_FS)
        _STATE = dict(moderngl=moderngl, ctx=ctx, gl=gl, prog=prog, fbos={})
        # self-check: the depth buffer really is 32-bit float
        _framebuffer(4, 4)
        info = gl_info()
        if info["depth_bits"] != 32 or info["depth_type"] != GL_FLOAT:
            raise RuntimeError(f"depth attachment is not 32-bit float: {info}")
    except Exception as e:  # noqa: BLE001 - report any failure as "unavailable"
        _STATE = None
        _ERROR = f"{type(e).__name__}: {e}"


def gl_available():
    """Return a GLStatus (truthy iff a GL 4.3 core context can be used)."""
    _init()
    if _STATE is None:
        return GLStatus(False, f"OpenGL 4.3 via moderngl/EGL unavailable: {_ERROR}")
    return GLStatus(True, None)


def gl_unavailable_reason():
    st = gl_available()
    return st.reason


def _framebuffer(H, W):
    st = _STATE
    key = (H, W)
    if key in st["fbos"]:
        return st["fbos"][key]
    ctx, gl = st["ctx"], st["gl"]
    color = ctx.texture((W, H), 4, dtype="f4")
    fbo = ctx.framebuffer(color_attachments=[color])
    rb = ctypes.c_uint(0)
    gl.glGenRenderbuffers(1, ctypes.byref(rb))
    gl.glBindRenderbuffer(GL_RENDERBUFFER, rb)
    gl.glRenderbufferStorage(GL_RENDERBUFFER, GL_DEPTH_COMPONENT32F, W, H)
    gl.glBindFramebuffer(GL_FRAMEBUFFER, fbo.glo)
    gl.glFramebufferRenderbuffer(GL_FRAMEBUFFER, GL_DEPTH_ATTACHMENT, GL_RENDERBUFFER, rb)
    status = gl.glCheckFramebufferStatus(GL_FRAMEBUFFER)
    if status != GL_FRAMEBUFFER_COMPLETE:
        raise RuntimeError(f"framebuffer incomplete: 0x{status:x}")
    fbo.depth_mask = True  # moderngl would otherwise disable depth writes
    st["fbos"][key] = (fbo, color, rb)
    st["last_fbo"] = fbo
    return st["fbos"][key]


def gl_info():
    """Renderer string and the properties of the depth attachment in use."""
    _init()
    if _STATE is None:
        return dict(error=_ERROR)
    st = _STATE
    gl, ctx = st["gl"], st["ctx"]
    fbo = st.get("last_fbo")
    out = dict(renderer=ctx.info.get("GL_RENDERER"), version=ctx.info.get("GL_VERSION"))
    if fbo is not None:
        gl.glBindFramebuffer(GL_FRAMEBUFFER, fbo.glo)
        v = ctypes.c_int(0)
        gl.glGetFramebufferAttachmentParameteriv(
            GL_FRAMEBUFFER, GL_DEPTH_ATTACHMENT, GL_FRAMEBUFFER_ATTACHMENT_DEPTH_SIZE, ctypes.byref(v))
        out["depth_bits"] = v.value
        gl.glGetFramebufferAttachmentParameteriv(
            GL_FRAMEBUFFER, GL_DEPTH_ATTACHMENT, GL_FRAMEBUFFER_ATTACHMENT_COMPONENT_TYPE, ctypes.byref(v))
        out["depth_type"] = v.value
    return out


def _render_view(P, tris, id_offset, H, W, want_depth=False):
    st = _STATE
    ctx, gl, prog = st["ctx"], st["gl"], st["prog"]
    fbo, color, rb = _framebuffer(H, W)
    fbo.use()
    ctx.viewport = (0, 0, W, H)
    gl.glBindFramebuffer(GL_FRAMEBUFFER, fbo.glo)
    gl.glDepthMask(GL_TRUE)
    gl.glColorMask(1, 1, 1, 1)
    gl.glEnable(GL_DEPTH_TEST)
    gl.glDepthFunc(GL_LESS)
    gl.glDisable(GL_CULL_FACE)
    gl.glDisable(GL_BLEND)
    gl.glDisable(GL_DITHER)
    gl.glDisable(GL_MULTISAMPLE)
    gl.glDisable(GL_DEPTH_CLAMP)
    gl.glClearColor(ctypes.c_float(0), ctypes.c_float(0), ctypes.c_float(0), ctypes.c_float(0))
    gl.glClearDepth(ctypes.c_double(1.0))
    gl.glClear(GL_COLOR_BUFFER_BIT | GL_DEPTH_BUFFER_BIT)
    T = len(tris)
    if T:
        verts = P[tris.reshape(-1)].astype(np.float32)  # [3T, 4]
        bary = np.tile(np.array([[1, 0], [0, 1], [0, 0]], np.float32), (T, 1))
        data = np.ascontiguousarray(np.concatenate([verts, bary], axis=1), dtype=np.float32)
        vbo = ctx.buffer(data.tobytes())
        vao = ctx.vertex_array(prog, [(vbo, "4f 2f", "in_pos", "in_bary")])
        prog["id_offset"].value = int(id_offset)
        # make sure moderngl did not change the state we rely on
        gl.glBindFramebuffer(GL_FRAMEBUFFER, fbo.glo)
        gl.glDepthMask(GL_TRUE)
        gl.glEnable(GL_DEPTH_TEST)
        gl.glDepthFunc(GL_LESS)
        vao.render(mode=st["moderngl"].TRIANGLES, vertices=3 * T)
        vao.release()
        vbo.release()
    ctx.finish()
    raw = fbo.read(components=4, dtype="f4", attachment=0)
    img = np.frombuffer(raw, dtype=np.float32).reshape(H, W, 4).copy()
    depth = None
    if want_depth:
        buf = np.zeros((H, W), dtype=np.float32)
        gl.glBindFramebuffer(GL_FRAMEBUFFER, fbo.glo)
        gl.glPixelStorei(0x0D05, 1)  # GL_PACK_ALIGNMENT
        gl.glReadPixels(0, 0, W, H, GL_DEPTH_COMPONENT, GL_FLOAT,
                        buf.ctypes.data_as(ctypes.c_void_p))
        depth = buf
    return img, depth


def gl_rasterize(pos, tri, H, W, ranges=None, return_depth=False):
    """Rasterize every view with OpenGL.  Returns rast float64 [B,H,W,4].

    ``pos`` [B,V,4] (instanced) or [V,4] with ``ranges`` [B,2] (start, count).
    Positions are rounded to float32, as GL receives them.  With
    ``return_depth`` also returns the raw window-space depth buffer [B,H,W].
    """
    st = gl_available()
    if not st:
        raise RuntimeError(st.reason)
    H, W = int(H), int(W)
    outs, depths = [], []
    for P, start, T in views_of(pos, tri, ranges):
        img, d = _render_view(np.asarray(P), np.asarray(T, dtype=np.int64), start, H, W, return_depth)
        outs.append(img.astype(np.float64))
        depths.append(d)
    rast = np.stack(outs) if outs else np.zeros((0, H, W, 4))
    if return_depth:
        return rast, np.stack(depths)
    return rast


if __name__ == "__main__":  # pragma: no cover
    st = gl_available()
    print(st)
    if st:
        print(gl_info())
