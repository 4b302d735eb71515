// The model's looks: its own texture, a neutral clay that shows the shape
// without the photos' colours, and a matcap (lighting baked into a sphere image,
// so it reads the same from every side). The textures are drawn on a canvas:
// no image file to fetch, nothing outside this origin.

import * as THREE from "../../vendor/three/three.module.js";

function canvasTexture(size, draw) {
  const canvas = document.createElement("canvas");
  canvas.width = canvas.height = size;
  draw(canvas.getContext("2d"), size);
  const texture = new THREE.CanvasTexture(canvas);
  texture.colorSpace = THREE.SRGBColorSpace;
  return texture;
}

// A lit sphere seen head-on: bright upper left, a warm rim, a dark lower right.
function matcapTexture() {
  return canvasTexture(256, (ctx, s) => {
    const body = ctx.createRadialGradient(s * 0.36, s * 0.32, s * 0.02, s * 0.5, s * 0.5, s * 0.5);
    body.addColorStop(0, "#ffffff");
    body.addColorStop(0.35, "#c8d3dc");
    body.addColorStop(0.8, "#58687a");
    body.addColorStop(1, "#2a323c");
    ctx.fillStyle = "#2a323c";
    ctx.fillRect(0, 0, s, s);
    ctx.beginPath();
    ctx.arc(s / 2, s / 2, s / 2, 0, Math.PI * 2);
    ctx.fillStyle = body;
    ctx.fill();
    const rim = ctx.createRadialGradient(s / 2, s / 2, s * 0.42, s / 2, s / 2, s * 0.5);
    rim.addColorStop(0, "rgba(255, 214, 170, 0)");
    rim.addColorStop(1, "rgba(255, 214, 170, 0.45)");
    ctx.fillStyle = rim;
    ctx.fill();
  });
}

// A round dot with a dark edge: overlay points read as discs, not squares.
export function dotTexture() {
  return canvasTexture(64, (ctx, s) => {
    ctx.beginPath();
    ctx.arc(s / 2, s / 2, s * 0.46, 0, Math.PI * 2);
    ctx.fillStyle = "#ffffff";
    ctx.fill();
    ctx.lineWidth = s * 0.08;
    ctx.strokeStyle = "rgba(0, 0, 0, 0.55)";
    ctx.stroke();
  });
}

export function makeLooks() {
  const shared = { side: THREE.DoubleSide, polygonOffset: true, polygonOffsetFactor: 1, polygonOffsetUnits: 1 };
  return {
    clay: new THREE.MeshStandardMaterial({ color: 0xcbc4ba, roughness: 0.85, metalness: 0, ...shared }),
    matcap: new THREE.MeshMatcapMaterial({ matcap: matcapTexture(), ...shared }),
    wire: new THREE.MeshBasicMaterial({ color: 0x5eead4, wireframe: true, transparent: true, opacity: 0.55 }),
  };
}
