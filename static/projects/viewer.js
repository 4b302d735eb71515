// The model viewer: the textured GLB with orbit controls, auto-rotate, lights
// that show the shape, wireframe and point-cloud toggles, the photos' camera
// positions (click one to see its photo) and the model's dimensions.
// Configuration comes from {{ viewer_config|json_script:"viewer-config" }}.

import * as THREE from "../vendor/three/three.module.js";
import { OrbitControls } from "../vendor/three/jsm/controls/OrbitControls.js";
import { GLTFLoader } from "../vendor/three/jsm/loaders/GLTFLoader.js";
import { DRACOLoader } from "../vendor/three/jsm/loaders/DRACOLoader.js";
import { PLYLoader } from "../vendor/three/jsm/loaders/PLYLoader.js";

const config = JSON.parse(document.getElementById("viewer-config").textContent);
const root = document.getElementById("viewer");
const stage = document.getElementById("viewer-stage");
const $ = (id) => document.getElementById(id);

function setState(state, message = "") {
  root.dataset.state = state;
  $("viewer-loading").hidden = state !== "loading";
  if (state === "error" || state === "no-webgl") {
    const box = $("viewer-fallback");
    box.hidden = false;
    box.replaceChildren();
    const strong = document.createElement("strong");
    strong.textContent = state === "no-webgl" ? "3D view is not available in this browser" : "The model could not be shown";
    const p = document.createElement("p");
    p.textContent = message;
    box.append(strong, p);
  }
}

function webglAvailable() {
  try {
    const canvas = document.createElement("canvas");
    return !!(window.WebGL2RenderingContext && canvas.getContext("webgl2")) || !!canvas.getContext("webgl");
  } catch {
    return false;
  }
}

// ---------------------------------------------------------------- cameras.json
// The pipeline's export writes one schema: {"cameras": [{name, source,
// gltf_camera_to_world, intrinsics: {width, height, fx}}]}. The matrix is
// camera-to-world, row-major, glTF axes (looking down -Z, +Y up); ``source`` is
// the photo's name in the user's zip, which the photo endpoint looks up
// (``name`` is ingest's renamed copy; results written before ``source`` existed
// had only names that were also the zip's base names).
function parseCameras(data) {
  const cams = [];
  for (const c of (data && data.cameras) || []) {
    const m = c.gltf_camera_to_world;
    if (!c.name || !Array.isArray(m) || m.length !== 4) continue;
    const toWorld = new THREE.Matrix4().set(...m.flat());
    const { width, height, fx } = c.intrinsics;
    cams.push({ name: c.source || c.name, toWorld, width, height, focal: fx });
  }
  return cams;
}

function frustumGroup(cams, size) {
  const group = new THREE.Group();
  group.name = "cameras";
  const lineMat = new THREE.LineBasicMaterial({ color: 0x5eead4, transparent: true, opacity: 0.9 });
  const faceMat = new THREE.MeshBasicMaterial({ color: 0x14b8a6, transparent: true, opacity: 0.28, side: THREE.DoubleSide, depthWrite: false });
  const pickables = [];
  for (const cam of cams) {
    const aspect = cam.width / cam.height;
    const depth = size;
    const halfW = (cam.width / 2 / cam.focal) * depth * 1.0;
    const halfH = halfW / aspect;
    // glTF camera frame: x right, y up, looking down -z.
    const corners = [
      [-halfW, halfH, -depth], [halfW, halfH, -depth], [halfW, -halfH, -depth], [-halfW, -halfH, -depth],
    ];
    const pts = [];
    for (const c of corners) pts.push(0, 0, 0, ...c);
    for (let i = 0; i < 4; i++) pts.push(...corners[i], ...corners[(i + 1) % 4]);
    // A small tick on the image's top edge shows which way is up.
    pts.push(-halfW * 0.4, halfH, -depth, 0, halfH * 1.5, -depth, 0, halfH * 1.5, -depth, halfW * 0.4, halfH, -depth);
    const lineGeom = new THREE.BufferGeometry();
    lineGeom.setAttribute("position", new THREE.Float32BufferAttribute(pts, 3));
    const lines = new THREE.LineSegments(lineGeom, lineMat);
    const faceGeom = new THREE.BufferGeometry();
    faceGeom.setAttribute("position", new THREE.Float32BufferAttribute([...corners[0], ...corners[1], ...corners[2], ...corners[0], ...corners[2], ...corners[3]], 3));
    const face = new THREE.Mesh(faceGeom, faceMat.clone());
    face.userData.camera = cam;
    const holder = new THREE.Group();
    holder.add(lines, face);
    holder.applyMatrix4(cam.toWorld);
    group.add(holder);
    pickables.push(face);
  }
  return { group, pickables };
}

// ---------------------------------------------------------------- loader
// The preview's geometry is Draco-compressed; the decoder is vendored and
// loaded from config.draco_path (WebAssembly: CSP allows 'wasm-unsafe-eval').
let draco = null;
function makeLoader(config) {
  const loader = new GLTFLoader();
  if (config.draco_path) {
    draco = draco || new DRACOLoader().setDecoderPath(config.draco_path);
    loader.setDRACOLoader(draco);
  }
  return loader;
}

// ---------------------------------------------------------------- main
async function main() {
  if (!config.model) {
    setState("error", "This project has no model file.");
    return;
  }
  if (!webglAvailable()) {
    setState("no-webgl", "Your browser or device has WebGL turned off. Download the GLB below and open it in any 3D viewer, or try another browser.");
    return;
  }
  setState("loading");

  const renderer = new THREE.WebGLRenderer({ antialias: true, preserveDrawingBuffer: true, powerPreference: "high-performance" });
  renderer.setPixelRatio(Math.min(window.devicePixelRatio || 1, 2));
  renderer.outputColorSpace = THREE.SRGBColorSpace;
  renderer.toneMapping = THREE.ACESFilmicToneMapping;
  renderer.toneMappingExposure = 1.05;
  renderer.setClearColor(0x000000, 0);
  stage.prepend(renderer.domElement);
  renderer.domElement.setAttribute("aria-label", `3D model of ${config.name}`);
  renderer.domElement.setAttribute("role", "img");

  let dirty = true;
  const redraw = () => { dirty = true; };
  const scene = new THREE.Scene();
  const camera = new THREE.PerspectiveCamera(40, 1, 0.01, 1000);
  const controls = new OrbitControls(camera, renderer.domElement);
  controls.enableDamping = true;
  controls.autoRotate = $("vw-rotate").checked;
  controls.autoRotateSpeed = 1.2;

  scene.add(new THREE.HemisphereLight(0xffffff, 0x445566, 1.2));
  const key = new THREE.DirectionalLight(0xffffff, 2.0);
  const fill = new THREE.DirectionalLight(0xcfe3ff, 0.6);
  const rim = new THREE.DirectionalLight(0xffffff, 0.8);
  scene.add(key, fill, rim, camera);

  function resize() {
    const { clientWidth: w, clientHeight: h } = stage;
    if (!w || !h) return;
    renderer.setSize(w, h, false);
    camera.aspect = w / h;
    camera.updateProjectionMatrix();
    redraw();
  }
  new ResizeObserver(resize).observe(stage);
  resize();

  let gltf;
  try {
    gltf = await makeLoader(config).loadAsync(config.model_url || config.model, (e) => {
      if (e.total) $("viewer-loading-text").textContent = `Loading the model… ${Math.round((e.loaded / e.total) * 100)} %`;
    });
  } catch (err) {
    setState("error", `Loading failed (${err.message || err}). Download the files below instead.`);
    return;
  }
  const model = gltf.scene;
  const materials = [];
  const meshes = [];
  model.traverse((obj) => {
    if (obj.isMesh) {
      meshes.push(obj);
      for (const m of Array.isArray(obj.material) ? obj.material : [obj.material]) {
        if (m.map) m.map.anisotropy = renderer.capabilities.getMaxAnisotropy();
        m.side = THREE.DoubleSide;
        materials.push(m);
      }
    }
  });
  scene.add(model);

  const box = new THREE.Box3().setFromObject(model);
  const size = box.getSize(new THREE.Vector3());
  const centre = box.getCenter(new THREE.Vector3());
  const radius = Math.max(size.length() / 2, 1e-6);

  // Lights placed around the object so its shape reads; the key follows the camera.
  key.position.set(radius * 0.6, radius * 1.2, radius * 1.6);
  camera.add(key);
  fill.position.copy(centre).add(new THREE.Vector3(-radius * 2, radius * 0.5, -radius));
  rim.position.copy(centre).add(new THREE.Vector3(0, radius * 2, -radius * 2));

  camera.near = radius / 100;
  camera.far = radius * 100;
  let viewRadius = radius;
  function resetView() {
    const dir = new THREE.Vector3(0.55, 0.45, 1).normalize();
    const vertical = THREE.MathUtils.degToRad(camera.fov / 2);
    const fov = Math.atan(Math.tan(vertical) * Math.min(1, camera.aspect)); // the narrower half-angle
    const distance = (viewRadius / Math.sin(fov)) * 1.02;
    camera.position.copy(centre).addScaledVector(dir, distance);
    camera.updateProjectionMatrix();
    controls.target.copy(centre);
    controls.update();
  }
  resetView();
  controls.minDistance = radius * 0.2;
  controls.maxDistance = radius * 20;

  const units = config.units || "units";
  const fmt = (v) => (v >= 100 ? v.toFixed(0) : v >= 10 ? v.toFixed(1) : v.toPrecision(3));
  $("viewer-dims").textContent = `${fmt(size.x)} × ${fmt(size.y)} × ${fmt(size.z)} ${units}` +
    (config.faces ? ` · ${Number(config.faces).toLocaleString()} faces` : "");

  // Cameras
  let cameraGroup = null;
  let pickables = [];
  if (config.cameras) {
    try {
      const response = await fetch(config.cameras, { credentials: "same-origin" });
      if (response.ok) {
        const cams = parseCameras(await response.json());
        if (cams.length) {
          ({ group: cameraGroup, pickables } = frustumGroup(cams, radius * 0.12));
          cameraGroup.visible = $("vw-cameras").checked;
          scene.add(cameraGroup);
          // Make sure the ring of cameras fits in the first view.
          const all = new THREE.Box3().setFromObject(cameraGroup).union(box);
          const allRadius = all.getSize(new THREE.Vector3()).length() / 2;
          controls.maxDistance = Math.max(controls.maxDistance, allRadius * 6);
          // Open on the object with the ring of cameras around it, the object still large.
          viewRadius = Math.min(allRadius * 0.7, radius * 1.7);
          resetView();
          root.dataset.cameras = String(cams.length);
        }
      }
    } catch {
      // Cameras are an extra; the model is shown without them.
    }
  }
  if (!cameraGroup) $("vw-cameras").closest("label").hidden = true;

  // Point cloud: the dense points when the project has them, else the mesh's vertices.
  let points = null;
  async function buildPoints() {
    const material = new THREE.PointsMaterial({ size: radius / 250, sizeAttenuation: true, vertexColors: false, color: 0xd9f99d });
    if (config.points) {
      try {
        const geometry = await new PLYLoader().loadAsync(config.points);
        if (geometry.getAttribute("color")) { material.vertexColors = true; material.color.set(0xffffff); }
        return new THREE.Points(geometry, material);
      } catch {
        // Fall through to the mesh's vertices.
      }
    }
    const group = new THREE.Group();
    for (const mesh of meshes) {
      const pts = new THREE.Points(mesh.geometry, material);
      pts.applyMatrix4(mesh.matrixWorld);
      group.add(pts);
    }
    return group;
  }

  controls.addEventListener("change", redraw);
  $("vw-rotate").addEventListener("change", (e) => { controls.autoRotate = e.target.checked; redraw(); });
  // Wireframe: plain bright edges (a dark texture drawn as lines would read as a black blob).
  const wireMaterial = new THREE.MeshBasicMaterial({ color: 0x5eead4, wireframe: true, transparent: true, opacity: 0.55 });
  const original = new Map(meshes.map((mesh) => [mesh, mesh.material]));
  $("vw-wire").addEventListener("change", (e) => {
    for (const mesh of meshes) mesh.material = e.target.checked ? wireMaterial : original.get(mesh);
    redraw();
  });
  $("vw-points").addEventListener("change", async (e) => {
    if (e.target.checked && !points) { points = await buildPoints(); scene.add(points); }
    if (points) points.visible = e.target.checked;
    model.visible = !e.target.checked;
    redraw();
  });
  $("vw-cameras").addEventListener("change", (e) => { if (cameraGroup) cameraGroup.visible = e.target.checked; redraw(); });
  $("vw-reset").addEventListener("click", () => { resetView(); redraw(); });

  // Click (not drag) on a camera: show its photo.
  const raycaster = new THREE.Raycaster();
  let down = null;
  let selected = null;
  renderer.domElement.addEventListener("pointerdown", (e) => { down = [e.clientX, e.clientY]; });
  renderer.domElement.addEventListener("pointerup", (e) => {
    if (!down || Math.hypot(e.clientX - down[0], e.clientY - down[1]) > 5 || !cameraGroup || !cameraGroup.visible) return;
    const rect = renderer.domElement.getBoundingClientRect();
    const ndc = new THREE.Vector2(((e.clientX - rect.left) / rect.width) * 2 - 1, -((e.clientY - rect.top) / rect.height) * 2 + 1);
    raycaster.setFromCamera(ndc, camera);
    const hit = raycaster.intersectObjects(pickables, false)[0];
    if (!hit) return;
    if (selected) selected.material.opacity = 0.28;
    selected = hit.object;
    selected.material.opacity = 0.85;
    redraw();
    showPhoto(hit.object.userData.camera.name);
  });

  function showPhoto(name) {
    if (!config.photo_base) return; // A share link without the photos.
    const dialog = $("photo-dialog");
    const img = $("photo-img");
    img.src = config.photo_base.replace("__NAME__", encodeURIComponent(name));
    img.alt = `Photo ${name}`;
    $("photo-caption").textContent = name;
    if (dialog.showModal) dialog.showModal(); else dialog.setAttribute("open", "");
  }
  root.showPhoto = showPhoto;

  renderer.domElement.addEventListener("webglcontextlost", (e) => {
    e.preventDefault();
    setState("error", "The graphics card ran out of memory. Reload the page, or download the model.");
  });

  // Draw only when something moved: phones keep their battery, slow GPUs stay responsive.
  renderer.setAnimationLoop(() => {
    const moved = controls.update();
    if (moved || dirty) {
      dirty = false;
      renderer.render(scene, camera);
    }
  });
  setState("ready");
}

main().catch((err) => setState("error", String(err && err.message ? err.message : err)));
