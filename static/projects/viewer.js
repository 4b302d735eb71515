// The model viewer: the textured GLB framed to fill the view, orbit controls
// tuned for a mouse wheel and the keyboard, looks (textured, clay, matcap),
// wireframe and point-cloud toggles, the photos' camera positions (click one to
// see its photo, then step through them), fullscreen, a PNG screenshot, the full
// model on demand, the coverage overlay and the real-size tool.
// Configuration comes from {{ viewer_config|json_script:"viewer-config" }}.

import * as THREE from "../vendor/three/three.module.js";
import { OrbitControls } from "../vendor/three/jsm/controls/OrbitControls.js";
import { GLTFLoader } from "../vendor/three/jsm/loaders/GLTFLoader.js";
import { DRACOLoader } from "../vendor/three/jsm/loaders/DRACOLoader.js";
import { PLYLoader } from "../vendor/three/jsm/loaders/PLYLoader.js";
import { coveragePoints } from "./viewer/coverage.js";
import { makeLooks } from "./viewer/looks.js";
import { MeasureMarks, postScale } from "./viewer/measure.js";

const config = JSON.parse(document.getElementById("viewer-config").textContent);
const root = document.getElementById("viewer");
const stage = document.getElementById("viewer-stage");
const $ = (id) => document.getElementById(id);
const modelUrl = config.model_url || config.model;
const fullUrl = config.full_model_url && config.full_model_url !== modelUrl ? config.full_model_url : "";

function setState(state, message = "") {
  root.dataset.state = state;
  if (state !== "loading") hideLoading();
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

// One spinner for every wait: centred while nothing is drawn, in a corner while
// the model stays on screen (full detail, coverage).
function showLoading(text, corner = false) {
  const box = $("viewer-loading");
  $("viewer-loading-text").textContent = text;
  box.toggleAttribute("data-over", corner);
  box.hidden = false;
}

function hideLoading() {
  $("viewer-loading").hidden = true;
}

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
  // In shooting order, so "next photo" walks round the object.
  return cams.sort((a, b) => a.name.localeCompare(b.name, undefined, { numeric: true }));
}

const MARKER = { line: 0x5eead4, face: 0x14b8a6, idle: 0.32, picked: 0.9 };

function frustumGroup(cams, size) {
  const group = new THREE.Group();
  group.name = "cameras";
  const lineMat = new THREE.LineBasicMaterial({ color: MARKER.line, transparent: true, opacity: 0.95 });
  const faceMat = new THREE.MeshBasicMaterial({ color: MARKER.face, transparent: true, opacity: MARKER.idle, side: THREE.DoubleSide, depthWrite: false });
  const pickables = [];
  cams.forEach((cam, index) => {
    const aspect = cam.width / cam.height;
    const depth = size;
    const halfW = (cam.width / 2 / cam.focal) * depth;
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
    face.userData.index = index;
    const holder = new THREE.Group();
    holder.add(lines, face);
    holder.applyMatrix4(cam.toWorld);
    group.add(holder);
    pickables.push(face);
  });
  return { group, pickables };
}

// The sphere round the mesh's vertices (three.js centres it on the box and
// takes the farthest vertex): tighter than the box's diagonal for round things.
function boundingSphere(meshes, box) {
  const sphere = new THREE.Sphere(box.getCenter(new THREE.Vector3()), 0);
  const world = new THREE.Sphere();
  for (const mesh of meshes) {
    if (!mesh.geometry.boundingSphere) mesh.geometry.computeBoundingSphere();
    world.copy(mesh.geometry.boundingSphere).applyMatrix4(mesh.matrixWorld);
    sphere.radius = Math.max(sphere.radius, sphere.center.distanceTo(world.center) + world.radius);
  }
  if (!sphere.radius) box.getBoundingSphere(sphere);
  sphere.radius = Math.max(sphere.radius, 1e-6);
  return sphere;
}

function prepareModel(gltf, renderer) {
  const model = gltf.scene;
  const meshes = [];
  model.updateMatrixWorld(true);
  model.traverse((obj) => {
    if (!obj.isMesh) return;
    meshes.push(obj);
    // Clay and matcap shade by normals; a scan saved without them still reads.
    if (!obj.geometry.getAttribute("normal")) obj.geometry.computeVertexNormals();
    for (const m of Array.isArray(obj.material) ? obj.material : [obj.material]) {
      if (m.map) m.map.anisotropy = renderer.capabilities.getMaxAnisotropy();
      m.side = THREE.DoubleSide;
      // Pushed back a hair so overlay dots on the surface win the depth test.
      m.polygonOffset = true;
      m.polygonOffsetFactor = 1;
      m.polygonOffsetUnits = 1;
    }
  });
  return { model, meshes, original: new Map(meshes.map((mesh) => [mesh, mesh.material])) };
}

function downloadBlob(blob, filename) {
  const a = document.createElement("a");
  a.href = URL.createObjectURL(blob);
  a.download = filename;
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(a.href), 10_000);
}

function fileStem(name) {
  return (name || "model").replace(/[^\w.-]+/g, "-").replace(/^-+|-+$/g, "") || "model";
}

// ---------------------------------------------------------------- main
async function main() {
  if (!modelUrl) {
    setState("error", "This project has no model file.");
    return;
  }
  setState("loading");
  showLoading("Loading the model…");
  const loadFailed = (err) => setState("error", `Loading failed (${err.message || err}). Download the files below instead.`);
  // The model's bytes and the Draco decoder come first; the decoder's worker
  // then decodes while the WebGL context is made (a few hundred ms with
  // software GL), instead of after it.
  const loader = makeLoader(config);
  if (draco) draco.preload();
  let parsing;
  try {
    const bytes = await new THREE.FileLoader().setResponseType("arraybuffer").loadAsync(modelUrl, (e) => {
      if (e.total) $("viewer-loading-text").textContent = `Loading the model… ${Math.round((e.loaded / e.total) * 100)} %`;
    });
    parsing = loader.parseAsync(bytes, THREE.LoaderUtils.extractUrlBase(modelUrl));
    parsing.catch(() => {}); // reported where it is awaited, below
    await new Promise((resolve) => setTimeout(resolve, 0)); // lets the parse reach the worker
  } catch (err) {
    loadFailed(err);
    return;
  }

  let renderer;
  try {
    renderer = new THREE.WebGLRenderer({ antialias: true, preserveDrawingBuffer: true, powerPreference: "high-performance" });
  } catch {
    setState("no-webgl", "Your browser or device has WebGL 2 turned off, which the 3D view needs. Turn it on or try another browser; a project's downloads (GLB, OBJ, STL) open in any 3D viewer.");
    return;
  }
  renderer.setPixelRatio(Math.min(window.devicePixelRatio || 1, 2));
  renderer.outputColorSpace = THREE.SRGBColorSpace;
  renderer.toneMapping = THREE.ACESFilmicToneMapping;
  renderer.toneMappingExposure = 1.05;
  renderer.setClearColor(0x000000, 0);
  const canvas = renderer.domElement;
  stage.prepend(canvas);
  canvas.tabIndex = 0;
  canvas.setAttribute("role", "application");
  canvas.setAttribute("aria-roledescription", "3D viewer");
  canvas.setAttribute("aria-label", `3D model of ${config.name}. Arrow keys turn it, plus and minus zoom, 0 or Home resets the view.`);

  let dirty = true;
  const redraw = () => { dirty = true; };
  const scene = new THREE.Scene();
  const camera = new THREE.PerspectiveCamera(40, 1, 0.01, 1000);
  const controls = new OrbitControls(camera, canvas);
  // A wheel notch (deltaY 100) moves 0.95^zoomSpeed: 2.4 gives ~12 % a notch,
  // about what Sketchfab does; trackpads send small deltas and stay smooth.
  controls.zoomSpeed = 2.4;
  controls.zoomToCursor = true;
  controls.enableDamping = true;
  controls.dampingFactor = 0.12;
  controls.rotateSpeed = 0.9;
  controls.autoRotate = $("vw-rotate").checked;
  controls.autoRotateSpeed = 1.2;

  scene.add(new THREE.HemisphereLight(0xffffff, 0x445566, 1.2));
  const key = new THREE.DirectionalLight(0xffffff, 2.0);
  const fill = new THREE.DirectionalLight(0xcfe3ff, 0.6);
  const rim = new THREE.DirectionalLight(0xffffff, 0.8);
  scene.add(key, fill, rim, camera);

  let fitView = () => {};
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

  let loaded;
  try {
    loaded = prepareModel(await parsing, renderer);
  } catch (err) {
    loadFailed(err);
    return;
  }
  let { model, meshes, original } = loaded;
  scene.add(model);

  const box = new THREE.Box3().setFromObject(model);
  const size = box.getSize(new THREE.Vector3());
  const sphere = boundingSphere(meshes, box);
  const centre = sphere.center;
  const radius = sphere.radius;

  // Lights placed around the object so its shape reads; the key follows the camera.
  key.position.set(radius * 0.6, radius * 1.2, radius * 1.6);
  camera.add(key);
  fill.position.copy(centre).add(new THREE.Vector3(-radius * 2, radius * 0.5, -radius));
  rim.position.copy(centre).add(new THREE.Vector3(0, radius * 2, -radius * 2));

  camera.near = radius / 100;
  camera.far = radius * 100;
  // The first view and Reset: the model's bounding sphere just inside the
  // narrower side of the view, seen from a little above and to the right.
  const viewDir = new THREE.Vector3(0.55, 0.45, 1).normalize();
  fitView = () => {
    const vertical = THREE.MathUtils.degToRad(camera.fov / 2);
    const half = Math.min(vertical, Math.atan(Math.tan(vertical) * camera.aspect));
    camera.position.copy(centre).addScaledVector(viewDir, (radius / Math.sin(half)) * 1.02);
    camera.updateProjectionMatrix();
    controls.target.copy(centre);
    controls.update();
    redraw();
  };
  fitView();
  controls.minDistance = radius * 0.15;
  controls.maxDistance = radius * 20;

  const units = config.units || "units";
  const fmt = (v) => (v >= 100 ? v.toFixed(0) : v >= 10 ? v.toFixed(1) : v.toPrecision(3));
  function showDims() {
    const mm = config.scale && config.scale.mm_per_unit;
    const [x, y, z] = [size.x, size.y, size.z].map((v) => (mm ? v * mm : v));
    $("viewer-dims").textContent = `${fmt(x)} × ${fmt(y)} × ${fmt(z)} ${mm ? "mm" : units}` +
      (config.faces ? ` · ${Number(config.faces).toLocaleString()} faces` : "");
    root.dataset.scaled = mm ? "true" : "false";
  }
  showDims();

  // ------------------------------------------------------------ looks
  const looks = makeLooks();
  function applyLook() {
    const wire = $("vw-wire").checked;
    const look = root.querySelector("input[name=vw-look]:checked").value;
    root.dataset.look = look;
    for (const mesh of meshes) mesh.material = wire ? looks.wire : look === "textured" ? original.get(mesh) : looks[look];
    redraw();
  }
  applyLook();
  for (const input of root.querySelectorAll("input[name=vw-look]")) input.addEventListener("change", applyLook);
  $("vw-wire").addEventListener("change", applyLook);

  // ------------------------------------------------------------ cameras
  let cameraGroup = null;
  let pickables = [];
  let cams = [];
  if (config.cameras) {
    try {
      const response = await fetch(config.cameras, { credentials: "same-origin" });
      if (response.ok) {
        cams = parseCameras(await response.json());
        if (cams.length) {
          // Markers a fifth of the object's size: easy to hit with a finger.
          ({ group: cameraGroup, pickables } = frustumGroup(cams, radius * 0.22));
          cameraGroup.visible = $("vw-cameras").checked;
          scene.add(cameraGroup);
          const all = new THREE.Box3().setFromObject(cameraGroup).union(box);
          controls.maxDistance = Math.max(controls.maxDistance, (all.getSize(new THREE.Vector3()).length() / 2) * 6);
          root.dataset.cameras = String(cams.length);
        }
      }
    } catch {
      // Cameras are an extra; the model is shown without them.
    }
  }
  if (!cameraGroup) $("vw-cameras").closest("label").hidden = true;

  // ------------------------------------------------------------ point cloud
  // The dense points when the project has them, else the mesh's vertices.
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
  $("vw-points").addEventListener("change", async (e) => {
    if (e.target.checked && !points) {
      root.dataset.points = "loading";
      model.visible = false;
      showLoading("Loading the point cloud…");
      points = await buildPoints();
      scene.add(points);
      hideLoading();
      root.dataset.points = "ready";
    }
    if (points) points.visible = e.target.checked;
    model.visible = !e.target.checked;
    redraw();
  });

  controls.addEventListener("change", redraw);
  $("vw-rotate").addEventListener("change", (e) => { controls.autoRotate = e.target.checked; redraw(); });
  $("vw-cameras").addEventListener("change", (e) => { if (cameraGroup) cameraGroup.visible = e.target.checked; redraw(); });
  $("vw-reset").addEventListener("click", () => fitView());

  // ------------------------------------------------------------ keyboard
  // Arrows orbit, +/- zoom, 0 or Home resets; the page does not scroll meanwhile.
  const offset = new THREE.Vector3();
  const spherical = new THREE.Spherical();
  const STEP = THREE.MathUtils.degToRad(10);
  function orbitBy(dTheta, dPhi, scale = 1) {
    offset.copy(camera.position).sub(controls.target);
    spherical.setFromVector3(offset);
    spherical.theta += dTheta;
    spherical.phi = THREE.MathUtils.clamp(spherical.phi + dPhi, 0.05, Math.PI - 0.05);
    spherical.radius = THREE.MathUtils.clamp(spherical.radius * scale, controls.minDistance, controls.maxDistance);
    offset.setFromSpherical(spherical);
    camera.position.copy(controls.target).add(offset);
    camera.lookAt(controls.target);
    controls.update();
    redraw();
  }
  canvas.addEventListener("keydown", (e) => {
    if (e.ctrlKey || e.metaKey || e.altKey) return;
    const actions = {
      ArrowLeft: () => orbitBy(-STEP, 0),
      ArrowRight: () => orbitBy(STEP, 0),
      ArrowUp: () => orbitBy(0, -STEP),
      ArrowDown: () => orbitBy(0, STEP),
      "+": () => orbitBy(0, 0, 0.85),
      "=": () => orbitBy(0, 0, 0.85),
      "-": () => orbitBy(0, 0, 1 / 0.85),
      _: () => orbitBy(0, 0, 1 / 0.85),
      0: () => fitView(),
      Home: () => fitView(),
    };
    const action = actions[e.key];
    if (!action) return;
    e.preventDefault();
    action();
  });

  // ------------------------------------------------------------ fullscreen
  const fullscreenButton = $("vw-fullscreen");
  if (!document.fullscreenEnabled) fullscreenButton.hidden = true; // iPhone Safari, a frame without allow="fullscreen"
  fullscreenButton.addEventListener("click", async () => {
    try {
      if (document.fullscreenElement) await document.exitFullscreen();
      else await root.requestFullscreen();
    } catch {
      fullscreenButton.hidden = true; // Refused (policy); the button would do nothing.
    }
  });
  document.addEventListener("fullscreenchange", () => {
    const on = document.fullscreenElement === root;
    fullscreenButton.textContent = on ? "Exit fullscreen" : "Fullscreen";
    fullscreenButton.setAttribute("aria-pressed", String(on));
    canvas.focus();
  });

  // ------------------------------------------------------------ screenshot
  // Drawn now, at the canvas's size, with a transparent background.
  $("vw-shot").addEventListener("click", () => {
    renderer.render(scene, camera);
    canvas.toBlob((blob) => { if (blob) downloadBlob(blob, `${fileStem(config.name)}.png`); }, "image/png");
  });

  // ------------------------------------------------------------ full detail
  const fullButton = $("vw-full");
  if (fullUrl) {
    fullButton.hidden = false;
    fullButton.addEventListener("click", async () => {
      fullButton.disabled = true;
      root.dataset.full = "loading";
      showLoading("Loading the full model…", true);
      try {
        const full = prepareModel(await makeLoader(config).loadAsync(fullUrl, (e) => {
          if (e.total) $("viewer-loading-text").textContent = `Loading the full model… ${Math.round((e.loaded / e.total) * 100)} %`;
        }), renderer);
        // Same frame as the preview: swap in place, keep the view and the look.
        full.model.visible = model.visible;
        scene.remove(model);
        scene.add(full.model);
        ({ model, meshes, original } = full);
        applyLook();
        fullButton.textContent = "Full detail shown";
        root.dataset.full = "ready";
      } catch (err) {
        fullButton.disabled = false;
        fullButton.textContent = "Full detail (retry)";
        root.dataset.full = "error";
        fullButton.title = `Loading failed: ${err.message || err}`;
      }
      hideLoading();
    });
  }

  // ------------------------------------------------------------ coverage
  const coverageToggle = $("vw-coverage");
  let coverage = null;
  if (config.coverage_url) {
    coverageToggle.closest("label").hidden = false;
    coverageToggle.addEventListener("change", async () => {
      const on = coverageToggle.checked;
      if (on && !coverage) {
        showLoading("Loading the coverage…", true);
        try {
          const response = await fetch(config.coverage_url, { credentials: "same-origin" });
          if (!response.ok) throw new Error(`answered ${response.status}`);
          const data = await response.json();
          coverage = coveragePoints(data, radius);
          scene.add(coverage.points);
          const threshold = Number(data.threshold) || 3;
          $("viewer-legend-more").hidden = threshold <= 3;
          $("viewer-legend-more-text").textContent = threshold === 4 ? "3 photos" : `3–${threshold - 1} photos`;
          $("viewer-coverage-note").textContent = data.sentence || "";
          root.dataset.coverage = String(coverage.count);
        } catch (err) {
          $("viewer-coverage-note").textContent = `The coverage could not be loaded (${err.message || err}).`;
          $("viewer-coverage-note").hidden = false;
          coverageToggle.checked = false;
          hideLoading();
          return;
        }
        hideLoading();
      }
      coverage.points.visible = on;
      $("viewer-legend").hidden = !on;
      $("viewer-coverage-note").hidden = !on || !$("viewer-coverage-note").textContent;
      redraw();
    });
  }

  // ------------------------------------------------------------ real size
  const marks = new MeasureMarks(scene, radius);
  const measureButton = $("vw-measure");
  const panel = $("viewer-measure");
  const form = $("viewer-measure-form");
  const hint = $("viewer-measure-hint");
  const measureError = $("viewer-measure-error");
  const measuring = () => root.dataset.mode === "measure";
  function measureLabel() {
    measureButton.textContent = config.scale ? "Change real size" : "Set real size";
  }
  function endMeasure() {
    delete root.dataset.mode;
    panel.hidden = true;
    marks.clear();
    redraw();
  }
  function startMeasure() {
    root.dataset.mode = "measure";
    $("vw-rotate").checked = false;
    controls.autoRotate = false;
    panel.hidden = false;
    form.hidden = true;
    measureError.hidden = true;
    marks.clear();
    $("viewer-measure-clear").hidden = !config.scale;
    hint.textContent = "Click a first point on the model (a corner or an edge you can measure).";
    redraw();
  }
  function pickMeasure(point) {
    const count = marks.add(point);
    redraw();
    if (count === 1) {
      hint.textContent = "Now click the second point.";
      return;
    }
    hint.textContent = `The two points are ${fmt(marks.distance())} ${units} apart in the model. How far apart are they really?`;
    form.hidden = false;
    $("viewer-measure-mm").focus();
  }
  async function saveScale(body) {
    measureError.hidden = true;
    $("viewer-measure-save").disabled = true;
    try {
      const data = await postScale(root, config.scale_url, body);
      config.scale = body.clear ? null : { mm_per_unit: data.mm_per_unit };
      showDims();
      measureLabel();
      endMeasure();
    } catch (err) {
      measureError.textContent = err.message;
      measureError.hidden = false;
    }
    $("viewer-measure-save").disabled = false;
  }
  if (config.scale_url) {
    measureButton.hidden = false;
    measureLabel();
    measureButton.addEventListener("click", () => (measuring() ? endMeasure() : startMeasure()));
    $("viewer-measure-cancel").addEventListener("click", endMeasure);
    $("viewer-measure-again").addEventListener("click", startMeasure);
    // Back to the reconstruction's own units: every download loses its mm copy.
    $("viewer-measure-clear").addEventListener("click", () => saveScale({ clear: true }));
    form.addEventListener("submit", (e) => {
      e.preventDefault();
      const mm = Number($("viewer-measure-mm").value);
      if (!(mm > 0)) {
        measureError.textContent = "Type the real distance in millimetres, a number above 0.";
        measureError.hidden = false;
        return;
      }
      const [a, b] = marks.points;
      saveScale({ point_a: a.toArray(), point_b: b.toArray(), distance_mm: mm });
    });
  }

  // ------------------------------------------------------------ clicks
  // A click (not a drag) picks a point while measuring, else a camera.
  const raycaster = new THREE.Raycaster();
  const ndc = new THREE.Vector2();
  let down = null;
  function castFrom(clientX, clientY) {
    const rect = canvas.getBoundingClientRect();
    ndc.set(((clientX - rect.left) / rect.width) * 2 - 1, -((clientY - rect.top) / rect.height) * 2 + 1);
    raycaster.setFromCamera(ndc, camera);
  }
  canvas.addEventListener("pointerdown", (e) => { down = [e.clientX, e.clientY]; });
  canvas.addEventListener("pointerup", (e) => {
    if (!down || Math.hypot(e.clientX - down[0], e.clientY - down[1]) > 5) return;
    castFrom(e.clientX, e.clientY);
    if (measuring()) {
      if (!model.visible) return;
      const hit = raycaster.intersectObjects(meshes, false)[0];
      if (hit) pickMeasure(hit.point);
      return;
    }
    if (!cameraGroup || !cameraGroup.visible) return;
    const hit = raycaster.intersectObjects(pickables, false)[0];
    if (hit) showPhotoAt(hit.object.userData.index);
  });

  // ------------------------------------------------------------ photos
  const dialog = $("photo-dialog");
  let current = -1;
  function highlight(index) {
    if (current >= 0 && pickables[current]) pickables[current].material.opacity = MARKER.idle;
    current = index;
    if (pickables[current]) pickables[current].material.opacity = MARKER.picked;
    redraw();
  }
  function showPhotoAt(index) {
    if (!config.photo_base || !cams.length) return; // A share link without the photos.
    const i = ((index % cams.length) + cams.length) % cams.length;
    highlight(i);
    const { name } = cams[i];
    const img = $("photo-img");
    img.src = config.photo_base.replace("__NAME__", encodeURIComponent(name));
    img.alt = `Photo ${name}`;
    $("photo-caption").textContent = `${name} · ${i + 1} of ${cams.length}`;
    dialog.dataset.index = String(i);
    if (!dialog.open) {
      if (dialog.showModal) dialog.showModal(); else dialog.setAttribute("open", "");
    }
  }
  root.showPhoto = (name) => {
    const index = cams.findIndex((c) => c.name === name);
    if (index >= 0) showPhotoAt(index);
  };
  $("photo-prev").addEventListener("click", () => showPhotoAt(current - 1));
  $("photo-next").addEventListener("click", () => showPhotoAt(current + 1));
  dialog.addEventListener("keydown", (e) => {
    if (e.key === "ArrowLeft") { e.preventDefault(); showPhotoAt(current - 1); }
    if (e.key === "ArrowRight") { e.preventDefault(); showPhotoAt(current + 1); }
  });
  dialog.addEventListener("close", () => canvas.focus({ preventScroll: true }));

  // Where the camera markers are on screen, nearest the view first, for tools and
  // tests that click them: [{index, name, x, y}] in client pixels, only those
  // not hidden behind the model or under the page's header.
  root.visibleCameras = () => {
    if (!cameraGroup || !cameraGroup.visible) return [];
    const rect = canvas.getBoundingClientRect();
    const found = [];
    for (const face of pickables) {
      face.geometry.computeBoundingSphere();
      const p = face.geometry.boundingSphere.center.clone().applyMatrix4(face.matrixWorld).project(camera);
      if (Math.abs(p.x) > 0.95 || Math.abs(p.y) > 0.95 || p.z > 1) continue;
      const x = rect.left + ((p.x + 1) / 2) * rect.width;
      const y = rect.top + ((1 - p.y) / 2) * rect.height;
      // Not under a sticky header or a dialog: a click there would reach the canvas.
      if (document.elementFromPoint(x, y) !== canvas) continue;
      castFrom(x, y);
      const hit = raycaster.intersectObjects([...pickables, ...meshes], false)[0];
      if (hit && hit.object === face) found.push({ index: face.userData.index, name: cams[face.userData.index].name, x, y, depth: p.z });
    }
    return found.sort((a, b) => a.depth - b.depth);
  };

  canvas.addEventListener("webglcontextlost", (e) => {
    e.preventDefault();
    setState("error", "The graphics card ran out of memory. Reload the page, or download the model.");
  });

  // Draw only when something moved: phones keep their battery, slow GPUs stay responsive.
  // "ready" once the first frame is drawn, so what waits for it sees the model.
  let firstFrame = true;
  renderer.setAnimationLoop(() => {
    const moved = controls.update();
    if (moved || dirty) {
      dirty = false;
      renderer.render(scene, camera);
      if (firstFrame) {
        firstFrame = false;
        setState("ready");
      }
    }
  });
}

main().catch((err) => setState("error", String(err && err.message ? err.message : err)));
