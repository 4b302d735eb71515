// The coverage overlay: the surface samples that too few photos saw, drawn as
// dots coloured by how many photos saw them (coverage.json, written by the
// pipeline: {"threshold", "low_share", "sentence", "samples": {"positions",
// "counts"}}, positions flat x,y,z in the model's frame).

import * as THREE from "../../vendor/three/three.module.js";
import { dotTexture } from "./looks.js";

const RED = new THREE.Color(0xef4444);
const ORANGE = new THREE.Color(0xf97316);
const YELLOW = new THREE.Color(0xfacc15);

export function countColour(count) {
  return count <= 1 ? RED : count === 2 ? ORANGE : YELLOW;
}

export function coveragePoints(data, radius) {
  const positions = (data.samples && data.samples.positions) || [];
  const counts = (data.samples && data.samples.counts) || [];
  const n = Math.min(Math.floor(positions.length / 3), counts.length);
  const colours = new Float32Array(n * 3);
  for (let i = 0; i < n; i++) countColour(counts[i]).toArray(colours, i * 3);
  const geometry = new THREE.BufferGeometry();
  geometry.setAttribute("position", new THREE.Float32BufferAttribute(positions.slice(0, n * 3), 3));
  geometry.setAttribute("color", new THREE.Float32BufferAttribute(colours, 3));
  // Sized in model units so a patch reads as a patch at any zoom; the mesh is
  // drawn with a polygon offset, so dots on its surface win the depth test.
  const material = new THREE.PointsMaterial({
    size: radius / 35, sizeAttenuation: true, vertexColors: true, map: dotTexture(), alphaTest: 0.5, toneMapped: false,
  });
  const points = new THREE.Points(geometry, material);
  points.name = "coverage";
  points.renderOrder = 1;
  return { points, count: n };
}
