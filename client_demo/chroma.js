// talkie chroma key: draws a <video> into a <canvas> with the key colour made transparent, for an
// OBS browser source over a game. Per pixel: the distance in chroma (Cb, Cr; BT.601) from the key
// gives alpha through a smooth ramp (soft edges; codec noise on the backdrop stays at alpha 0);
// the key colour mixed into edge pixels is taken back out (colour = (pixel - (1 - alpha) * key) /
// alpha), and what is left of the key's hue near the ramp (the codec's half-resolution chroma
// bleeds past the edge) is removed from the chroma, luma kept: no green fringe. WebGL when the
// browser has it, else a 2D canvas doing the same sums.
"use strict";

const CHROMA_LOW = 0.12; // at or under this chroma distance from the key: fully transparent
const CHROMA_HIGH = 0.42; // at or over: fully opaque
const DESPILL_FADE = 0.12; // the key's hue is taken out of pixels up to this far past CHROMA_HIGH

function parseKey(hex) {
  const m = /^#?([0-9a-f]{6}|[0-9a-f]{3})$/i.exec(hex || "");
  if (!m) return [0, 1, 0];
  const h = m[1].length === 3 ? m[1].replace(/./g, "$&$&") : m[1];
  return [0, 2, 4].map((i) => parseInt(h.slice(i, i + 2), 16) / 255);
}

function smooth(t) {
  const x = t <= 0 ? 0 : t >= 1 ? 1 : t;
  return x * x * (3 - 2 * x);
}

function chromaOf(r, g, b) {
  return [-0.168736 * r - 0.331264 * g + 0.5 * b, 0.5 * r - 0.418688 * g - 0.081312 * b];
}

const VERTEX = `attribute vec2 p; varying vec2 uv;
void main() { uv = vec2((p.x + 1.0) * 0.5, (1.0 - p.y) * 0.5); gl_Position = vec4(p, 0.0, 1.0); }`;
const FRAGMENT = `precision mediump float;
varying vec2 uv; uniform sampler2D frame; uniform vec3 key; uniform vec2 keyChroma; uniform vec3 ramp;
vec2 chroma(vec3 c) { return vec2(dot(c, vec3(-0.168736, -0.331264, 0.5)), dot(c, vec3(0.5, -0.418688, -0.081312))); }
void main() {
  vec3 c = texture2D(frame, uv).rgb;
  float dist = distance(chroma(c), keyChroma);
  float a = smoothstep(ramp.x, ramp.y, dist);
  if (a <= 0.0) { gl_FragColor = vec4(0.0); return; }
  vec3 fg = clamp((c - (1.0 - a) * key) / a, 0.0, 1.0);
  vec2 u = normalize(keyChroma);
  float spill = max(0.0, dot(chroma(fg), u)) * (1.0 - smoothstep(ramp.y, ramp.y + ramp.z, dist));
  vec2 s = spill * u;
  fg = clamp(fg - vec3(1.402 * s.y, -0.344136 * s.x - 0.714136 * s.y, 1.772 * s.x), 0.0, 1.0);
  gl_FragColor = vec4(fg * a, a);
}`;

class ChromaKeyer {
  constructor(video, canvas, keyHex, { webgl = true } = {}) {
    this.video = video;
    this.canvas = canvas;
    this.key = parseKey(keyHex);
    this.keyChroma = chromaOf(...this.key);
    this.frames = 0;
    this.mode = webgl && this.initGl() ? "webgl" : "2d";
    if (this.mode === "2d") {
      this.ctx = canvas.getContext("2d", { willReadFrequently: true });
    }
  }

  initGl() {
    const gl = this.canvas.getContext("webgl", { premultipliedAlpha: true, alpha: true, preserveDrawingBuffer: true });
    if (!gl) return false;
    const shader = (type, source) => {
      const s = gl.createShader(type);
      gl.shaderSource(s, source);
      gl.compileShader(s);
      return s;
    };
    const program = gl.createProgram();
    gl.attachShader(program, shader(gl.VERTEX_SHADER, VERTEX));
    gl.attachShader(program, shader(gl.FRAGMENT_SHADER, FRAGMENT));
    gl.linkProgram(program);
    if (!gl.getProgramParameter(program, gl.LINK_STATUS)) return false;
    gl.useProgram(program);
    gl.bindBuffer(gl.ARRAY_BUFFER, gl.createBuffer());
    gl.bufferData(gl.ARRAY_BUFFER, new Float32Array([-1, -1, 1, -1, -1, 1, 1, 1]), gl.STATIC_DRAW);
    const p = gl.getAttribLocation(program, "p");
    gl.enableVertexAttribArray(p);
    gl.vertexAttribPointer(p, 2, gl.FLOAT, false, 0, 0);
    gl.bindTexture(gl.TEXTURE_2D, gl.createTexture());
    for (const [k, v] of [[gl.TEXTURE_MIN_FILTER, gl.LINEAR], [gl.TEXTURE_MAG_FILTER, gl.LINEAR], [gl.TEXTURE_WRAP_S, gl.CLAMP_TO_EDGE], [gl.TEXTURE_WRAP_T, gl.CLAMP_TO_EDGE]]) {
      gl.texParameteri(gl.TEXTURE_2D, k, v);
    }
    gl.uniform3fv(gl.getUniformLocation(program, "key"), this.key);
    gl.uniform2fv(gl.getUniformLocation(program, "keyChroma"), this.keyChroma);
    gl.uniform3f(gl.getUniformLocation(program, "ramp"), CHROMA_LOW, CHROMA_HIGH, DESPILL_FADE);
    gl.clearColor(0, 0, 0, 0);
    this.gl = gl;
    return true;
  }

  fit() {
    const w = this.video.videoWidth;
    const h = this.video.videoHeight;
    if (!w || !h) return false;
    if (this.canvas.width !== w || this.canvas.height !== h) {
      this.canvas.width = w;
      this.canvas.height = h;
      if (this.gl) this.gl.viewport(0, 0, w, h);
    }
    return true;
  }

  draw() {
    if (!this.fit()) return;
    if (this.gl) {
      const gl = this.gl;
      gl.texImage2D(gl.TEXTURE_2D, 0, gl.RGB, gl.RGB, gl.UNSIGNED_BYTE, this.video);
      gl.clear(gl.COLOR_BUFFER_BIT);
      gl.drawArrays(gl.TRIANGLE_STRIP, 0, 4);
    } else {
      this.draw2d();
    }
    this.frames += 1;
  }

  draw2d() {
    const { width: w, height: h } = this.canvas;
    this.ctx.globalCompositeOperation = "copy";
    this.ctx.drawImage(this.video, 0, 0, w, h);
    const image = this.ctx.getImageData(0, 0, w, h);
    const px = image.data;
    const [kr, kg, kb] = this.key;
    const [kcb, kcr] = this.keyChroma;
    const norm = Math.hypot(kcb, kcr) || 1;
    const [ucb, ucr] = [kcb / norm, kcr / norm];
    const span = CHROMA_HIGH - CHROMA_LOW;
    for (let i = 0; i < px.length; i += 4) {
      const r = px[i] / 255;
      const g = px[i + 1] / 255;
      const b = px[i + 2] / 255;
      const dcb = -0.168736 * r - 0.331264 * g + 0.5 * b - kcb;
      const dcr = 0.5 * r - 0.418688 * g - 0.081312 * b - kcr;
      const dist = Math.sqrt(dcb * dcb + dcr * dcr);
      const a = smooth((dist - CHROMA_LOW) / span);
      if (a <= 0) {
        px[i + 3] = 0;
        continue;
      }
      // ImageData is straight alpha: the unmixed colour, then the key's hue taken out near the ramp.
      const un = (c, k) => Math.min(1, Math.max(0, (c - (1 - a) * k) / a));
      let fr = un(r, kr), fgr = un(g, kg), fb = un(b, kb);
      const [cb, cr] = chromaOf(fr, fgr, fb);
      const spill = Math.max(0, cb * ucb + cr * ucr) * (1 - smooth((dist - CHROMA_HIGH) / DESPILL_FADE));
      const [scb, scr] = [spill * ucb, spill * ucr];
      fr -= 1.402 * scr;
      fgr -= -0.344136 * scb - 0.714136 * scr;
      fb -= 1.772 * scb;
      px[i] = Math.round(Math.min(1, Math.max(0, fr)) * 255);
      px[i + 1] = Math.round(Math.min(1, Math.max(0, fgr)) * 255);
      px[i + 2] = Math.round(Math.min(1, Math.max(0, fb)) * 255);
      px[i + 3] = Math.round(a * 255);
    }
    this.ctx.putImageData(image, 0, 0);
  }

  // Draw every new video frame (requestVideoFrameCallback where there is one).
  start() {
    const loop = () => {
      this.draw();
      if (this.video.requestVideoFrameCallback) this.video.requestVideoFrameCallback(loop);
      else requestAnimationFrame(loop);
    };
    if (this.video.requestVideoFrameCallback) this.video.requestVideoFrameCallback(loop);
    else requestAnimationFrame(loop);
  }
}

window.ChromaKeyer = ChromaKeyer;
