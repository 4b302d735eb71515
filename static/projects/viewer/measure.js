// "Set real size": the owner clicks two points on the model and types their real
// distance; the portal stores millimetres per model unit (POST to scale_url,
// body {"point_a", "point_b", "distance_mm"} in the model frame of model.glb, or
// {"clear": true}) and rescales the downloads.

import * as THREE from "../../vendor/three/three.module.js";

function csrfToken(root) {
  if (root.dataset.csrf) return root.dataset.csrf;
  const cookie = document.cookie.split("; ").find((c) => c.startsWith("csrftoken="));
  return cookie ? decodeURIComponent(cookie.slice("csrftoken=".length)) : "";
}

export async function postScale(root, url, body) {
  const response = await fetch(url, {
    method: "POST",
    credentials: "same-origin",
    headers: { "Content-Type": "application/json", "X-CSRFToken": csrfToken(root) },
    body: JSON.stringify(body),
  });
  let data = {};
  try {
    data = await response.json();
  } catch {
    // A proxy's HTML error page: the status line says enough.
  }
  if (!response.ok) throw new Error(data.detail || `The portal answered ${response.status}. Try again in a moment.`);
  return data;
}

// Markers drawn on top of the model (no depth test) so a point on a far edge stays visible.
export class MeasureMarks {
  constructor(scene, radius) {
    this.group = new THREE.Group();
    this.group.name = "measure";
    this.radius = radius;
    this.points = [];
    this.material = new THREE.MeshBasicMaterial({ color: 0xfacc15, depthTest: false, toneMapped: false });
    this.lineMaterial = new THREE.LineBasicMaterial({ color: 0xfacc15, depthTest: false, toneMapped: false });
    scene.add(this.group);
  }

  add(point) {
    if (this.points.length >= 2) this.clear();
    this.points.push(point.clone());
    const dot = new THREE.Mesh(new THREE.SphereGeometry(this.radius / 70, 16, 12), this.material);
    dot.position.copy(point);
    dot.renderOrder = 10;
    this.group.add(dot);
    if (this.points.length === 2) {
      const line = new THREE.Line(new THREE.BufferGeometry().setFromPoints(this.points), this.lineMaterial);
      line.renderOrder = 10;
      this.group.add(line);
    }
    return this.points.length;
  }

  distance() {
    return this.points.length === 2 ? this.points[0].distanceTo(this.points[1]) : 0;
  }

  clear() {
    for (const child of [...this.group.children]) {
      child.geometry.dispose();
      this.group.remove(child);
    }
    this.points = [];
  }
}
