// The job page's 3D view: a GLB (motion.glb or an avatar's) animated in three.js, its time driven
// by the page (the preview video's clock when there is one), with orbit controls.
import * as THREE from './vendor/three/three.module.js';
import { GLTFLoader } from './vendor/three/GLTFLoader.js';
import { OrbitControls } from './vendor/three/OrbitControls.js';

export class Viewer {
  constructor(canvas) {
    this.canvas = canvas;
    // preserveDrawingBuffer: the picture stays readable (screenshots, the page's own tests)
    this.renderer = new THREE.WebGLRenderer({ canvas, antialias: true, preserveDrawingBuffer: true });
    this.renderer.setPixelRatio(Math.min(window.devicePixelRatio || 1, 2));
    this.scene = new THREE.Scene();
    this.scene.background = new THREE.Color(0x0d1520);
    this.camera = new THREE.PerspectiveCamera(40, 16 / 9, 0.01, 200);
    this.camera.position.set(2.5, 1.6, 3.5);
    this.controls = new OrbitControls(this.camera, canvas);
    this.controls.target.set(0, 0.9, 0);
    this.controls.enableDamping = true;
    this.scene.add(new THREE.HemisphereLight(0xffffff, 0x334455, 2.2));
    const sun = new THREE.DirectionalLight(0xffffff, 1.6);
    sun.position.set(3, 6, 4);
    this.scene.add(sun);
    const grid = new THREE.GridHelper(10, 20, 0x4a6fa5, 0x24344a);
    this.scene.add(grid);
    this.loader = new GLTFLoader();
    this.model = null;
    this.mixer = null;
    this.duration = 0;
    this.timeSource = () => 0;
    this.onFrame = null;
    this.running = false;
    this.resize = this.resize.bind(this);
    this.observer = new ResizeObserver(this.resize);
    this.observer.observe(canvas);
  }

  resize() {
    const w = this.canvas.clientWidth || 640;
    const hgt = this.canvas.clientHeight || 360;
    this.renderer.setSize(w, hgt, false);
    this.camera.aspect = w / hgt;
    this.camera.updateProjectionMatrix();
  }

  async load(url) {
    const gltf = await this.loader.loadAsync(url);
    if (this.model) {
      this.scene.remove(this.model);
      this.model.traverse((o) => { if (o.geometry) o.geometry.dispose(); });
    }
    this.model = gltf.scene;
    this.model.traverse((o) => { if (o.isMesh || o.isSkinnedMesh) o.frustumCulled = false; });
    this.scene.add(this.model);
    this.helper = new THREE.SkeletonHelper(this.model);
    this.helper.material.linewidth = 2;
    this.scene.add(this.helper);
    this.mixer = new THREE.AnimationMixer(this.model);
    const clip = gltf.animations[0];
    this.duration = clip ? clip.duration : 0;
    if (clip) this.mixer.clipAction(clip).play();
    this.mixer.setTime(0);
    this.frame();
  }

  // Put the camera where the whole figure is in view, from the front and a little to the side.
  frame() {
    const box = new THREE.Box3();
    this.model.traverse((o) => { if (o.isBone) box.expandByPoint(o.getWorldPosition(new THREE.Vector3())); });
    if (box.isEmpty()) box.setFromObject(this.model);
    const centre = box.getCenter(new THREE.Vector3());
    const size = box.getSize(new THREE.Vector3());
    const radius = Math.max(size.x, size.y, size.z, 1.0);
    this.controls.target.copy(centre);
    this.camera.position.set(centre.x + radius * 0.9, centre.y + radius * 0.35, centre.z + radius * 1.9);
    this.camera.near = radius / 100;
    this.camera.far = radius * 100;
    this.camera.updateProjectionMatrix();
  }

  start() {
    this.running = true;
    this.resize();
    const loop = () => {
      if (!this.running) return;
      const t = this.timeSource();
      if (this.mixer) this.mixer.setTime(Math.min(Math.max(t, 0), this.duration || 0));
      if (this.onFrame) this.onFrame(t);
      this.controls.update();
      this.renderer.render(this.scene, this.camera);
      if (this.mixer && !this.drewModel) {
        this.drewModel = true;
        performance.mark('studio:viewer-first-frame'); // the loaded figure is drawn (bench/studio.py reads it)
      }
      this.raf = requestAnimationFrame(loop);
    };
    this.raf = requestAnimationFrame(loop);
  }

  dispose() {
    this.running = false;
    cancelAnimationFrame(this.raf);
    this.observer.disconnect();
    this.controls.dispose();
    this.renderer.dispose();
  }
}
