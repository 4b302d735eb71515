// Small previews of the photos to send, drawn only when their tile scrolls
// into view and two at a time, so choosing 500 photos does not stall the page:
// createImageBitmap decodes at the small size off the main thread.

const SIZE = 96;
const AT_ONCE = 2;

export const thumbnails = {
  files: new WeakMap(),
  queue: [],
  running: 0,
  observer: null,

  watch(canvas, file) {
    if (!this.observer) {
      this.observer = new IntersectionObserver((seen) => {
        for (const entry of seen) {
          if (!entry.isIntersecting) continue;
          this.observer.unobserve(entry.target);
          this.queue.push(entry.target);
        }
        this.pump();
      }, { rootMargin: "200px" });
    }
    this.files.set(canvas, file);
    this.observer.observe(canvas);
  },

  unwatch(canvas) {
    if (this.observer) this.observer.unobserve(canvas);
    this.files.delete(canvas);
  },

  clear() {
    if (this.observer) this.observer.disconnect();
    this.queue = [];
  },

  pump() {
    while (this.running < AT_ONCE && this.queue.length) {
      const canvas = this.queue.shift();
      const file = this.files.get(canvas);
      if (!file) continue;
      this.running++;
      draw(canvas, file).finally(() => { this.running--; this.pump(); });
    }
  },
};

async function draw(canvas, file) {
  let bitmap;
  try {
    bitmap = await createImageBitmap(file, { resizeHeight: SIZE * 2, resizeQuality: "low" });
  } catch {
    canvas.classList.add("thumb__img--broken"); // a decode failure shows up in the checks
    return;
  }
  // Cover the square: crop the longer side around the centre.
  const side = Math.min(bitmap.width, bitmap.height);
  const context = canvas.getContext("2d");
  context.drawImage(bitmap, (bitmap.width - side) / 2, (bitmap.height - side) / 2, side, side, 0, 0, canvas.width, canvas.height);
  bitmap.close();
  canvas.dataset.drawn = "1";
}
