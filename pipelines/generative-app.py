#!/usr/bin/python3
"""generative-app.py: the generative elements from a Python application.

What a media app does around gst-launch-1.0's one line, with PyGObject
(Debian: python3-gst-1.0) and the plugin's GstGenerative typelib:

  clean IN OUT [--strength S] [--change-at SECONDS --to S2]
      speech cleanup with gansynth into FLAC, Ogg Vorbis or WAV; --change-at
      sets gansynth's strength to S2 while the pipeline plays, exactly at
      the first buffer from SECONDS on (a pad probe, so a file job that runs
      faster than real time changes it at the same sample every time)
  upscale IN OUT.webm [--scale 2|4] [--num-steps N]
      diffusionsr of a video file into VP8/WebM
  latents IN [--frames N]
      vaeencode output-mode=attach: the frames pass on carrying their VAE
      latent (GstLatentMeta), read here through GstGenerative

Each file job shows a progress bar on stderr (position over duration, and
speed against real time; one line per 10 % when stderr is not a terminal),
reports the elements' PROGRESS messages (model loads), and prints every
generative element's "stats" property at the end.  Errors name the element
and exit non-zero.

From the build tree run it inside "meson devenv -C build" (which puts the
plugin, the models and the typelib in reach); installed, as it is.
"""

import argparse
import math
import os
import sys
import time

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstGenerative", "1.0")
from gi.repository import GLib, Gst, GstGenerative  # noqa: E402

GENERATIVE = ("diffusionsr", "diffusioninpaint", "diffusionimg2img",
              "vaeencode", "vaedecode", "gansynth")


class Job:
    """A pipeline run to its end on a GLib main loop, with a progress bar."""

    def __init__(self, description, quiet=False):
        self.pipeline = Gst.parse_launch(description)
        self.quiet = quiet
        self.loop = GLib.MainLoop()
        self.error = None
        self.started = None
        self.last_tenth = -1
        bus = self.pipeline.get_bus()
        bus.add_signal_watch()
        bus.connect("message", self.on_message)

    def element(self, name):
        return self.pipeline.get_by_name(name)

    def on_message(self, bus, msg):
        if msg.type == Gst.MessageType.EOS:
            self.loop.quit()
        elif msg.type == Gst.MessageType.ERROR:
            err, debug = msg.parse_error()
            self.error = "%s: %s\n  (%s)" % (msg.src.get_name(), err.message, debug)
            self.loop.quit()
        elif msg.type == Gst.MessageType.WARNING:
            err, _ = msg.parse_warning()
            self.clear_bar()
            print("warning: %s: %s" % (msg.src.get_name(), err.message), file=sys.stderr)
        elif msg.type == Gst.MessageType.PROGRESS:
            _, code, text = msg.parse_progress()
            self.clear_bar()
            print("%s: %s" % (msg.src.get_name(), text), file=sys.stderr)

    # -- progress ---------------------------------------------------------

    def clear_bar(self):
        if not self.quiet and sys.stderr.isatty():
            sys.stderr.write("\r\033[K")

    def show_progress(self):
        ok_pos, pos = self.pipeline.query_position(Gst.Format.TIME)
        ok_dur, dur = self.pipeline.query_duration(Gst.Format.TIME)
        if not ok_pos or not ok_dur or dur <= 0 or self.quiet:
            return True
        frac = min(1.0, max(0.0, pos / dur))
        elapsed = max(time.monotonic() - self.started, 1e-6)
        speed = (pos / Gst.SECOND) / elapsed
        text = "%5.1f %%  %6.1f / %.1f s  %.2fx real time" % (
            100 * frac, pos / Gst.SECOND, dur / Gst.SECOND, speed)
        if sys.stderr.isatty():
            width = 30
            done = int(round(frac * width))
            sys.stderr.write("\r[%s%s] %s" % ("#" * done, "." * (width - done), text))
            sys.stderr.flush()
        else:
            tenth = int(frac * 10)
            if tenth > self.last_tenth:
                self.last_tenth = tenth
                print("progress: " + text, file=sys.stderr)
        return True

    # -- running ----------------------------------------------------------

    def run(self):
        self.started = time.monotonic()
        timer = GLib.timeout_add(250, self.show_progress)
        if self.pipeline.set_state(Gst.State.PLAYING) == Gst.StateChangeReturn.FAILURE:
            # the ERROR message on the bus says why
            pass
        self.loop.run()
        GLib.source_remove(timer)
        if self.error is None:
            self.show_progress()
        self.clear_bar()
        if not self.quiet and sys.stderr.isatty() and self.error is None:
            sys.stderr.write("\n")
        self.print_stats()
        self.pipeline.set_state(Gst.State.NULL)
        if self.error is not None:
            print("error: " + self.error, file=sys.stderr)
            return 1
        print("done in %.2f s" % (time.monotonic() - self.started))
        return 0

    def print_stats(self):
        """The "stats" of each generative element: a string (the video
        elements) or a GstStructure (gansynth)."""
        it = self.pipeline.iterate_recurse()
        for el in iterate(it):
            factory = el.get_factory()
            if factory is None or factory.get_name() not in GENERATIVE:
                continue
            stats = el.get_property("stats")
            if isinstance(stats, Gst.Structure):
                stats = stats.to_string()
            print("stats %s: %s" % (el.get_name(), stats))


def iterate(it):
    while True:
        res, value = it.next()
        if res == Gst.IteratorResult.OK:
            yield value
        elif res == Gst.IteratorResult.RESYNC:
            it.resync()
        else:
            return


def uri_safe(path):
    # gst_parse_launch takes the line as one string: quote the file names.
    return '"%s"' % path.replace("\\", "\\\\").replace('"', '\\"')


# -- subcommands -----------------------------------------------------------

def audio_encoder(out):
    if out.endswith(".flac"):
        return "flacenc"
    if out.endswith(".ogg"):
        return "vorbisenc ! oggmux"
    if out.endswith(".wav"):
        return "wavenc"
    sys.exit("generative-app: OUT must end in .flac, .ogg or .wav")


def cmd_clean(args):
    job = Job("filesrc location=%s ! decodebin ! audioconvert ! audioresample "
              "! gansynth name=gs strength=%g ! audioconvert ! %s ! filesink location=%s"
              % (uri_safe(args.input), args.strength, audio_encoder(args.output),
                 uri_safe(args.output)), args.quiet)
    gs = job.element("gs")
    if args.change_at is not None:
        at = int(args.change_at * Gst.SECOND)
        changed = []

        # On gansynth's sink pad, in the streaming thread, before the
        # element sees the buffer: strength is controllable while playing.
        def probe(pad, info):
            buf = info.get_buffer()
            if not changed and buf.pts != Gst.CLOCK_TIME_NONE and buf.pts >= at:
                gs.set_property("strength", args.to)
                changed.append(buf.pts)
                job.clear_bar()
                print("strength %g -> %g at %.3f s (now %g)"
                      % (args.strength, args.to, buf.pts / Gst.SECOND,
                         gs.get_property("strength")), file=sys.stderr)
            return Gst.PadProbeReturn.OK

        gs.get_static_pad("sink").add_probe(Gst.PadProbeType.BUFFER, probe)
    ret = job.run()
    if ret == 0 and args.change_at is not None and not gs.get_property("strength") == args.to:
        print("error: strength was never changed (the file ends before %g s)"
              % args.change_at, file=sys.stderr)
        return 1
    return ret


def cmd_upscale(args):
    return Job("filesrc location=%s ! decodebin ! videoconvert "
               "! diffusionsr name=sr scale=%d num-steps=%d ! videoconvert "
               "! vp8enc deadline=1 target-bitrate=2000000 ! webmmux ! filesink location=%s"
               % (uri_safe(args.input), args.scale, args.num_steps, uri_safe(args.output)),
               args.quiet).run()


def cmd_latents(args):
    job = Job("filesrc location=%s ! decodebin ! videoconvert "
              "! vaeencode name=enc output-mode=attach ! appsink name=sink sync=false "
              "emit-signals=true max-buffers=4" % uri_safe(args.input), True)
    seen = []

    def on_sample(sink):
        sample = sink.emit("pull-sample")
        buf = sample.get_buffer()
        meta = GstGenerative.buffer_get_latent_meta(buf)
        if meta is None:
            job.error = "frame %d carries no latent" % len(seen)
            job.loop.quit()
            return Gst.FlowReturn.ERROR
        values = meta.get_values()
        n = meta.width * meta.height
        if len(values) != meta.channels * n:
            job.error = "frame %d: %d values for %dx%dx%d" % (
                len(seen), len(values), meta.channels, meta.height, meta.width)
            job.loop.quit()
            return Gst.FlowReturn.ERROR
        means = []
        for c in range(meta.channels):
            plane = values[c * n:(c + 1) * n]
            means.append(sum(plane) / n)
        rms = math.sqrt(sum(v * v for v in values) / len(values))
        seen.append(buf.pts)
        if len(seen) <= args.frames:
            print("frame %d at %.3f s: latent %d x %d x %d (factor %d, scaling %.5f), "
                  "channel means %s, rms %.4f, [0,0,0] = %.4f"
                  % (len(seen) - 1, buf.pts / Gst.SECOND, meta.channels, meta.height,
                     meta.width, meta.factor, meta.scaling_factor,
                     " ".join("%.4f" % m for m in means), rms,
                     meta.get_value(0, 0, 0)))
        return Gst.FlowReturn.OK

    job.element("sink").connect("new-sample", on_sample)
    ret = job.run()
    if ret == 0:
        print("%d frames, each with its latent" % len(seen))
        if not seen:
            return 1
    return ret


def main():
    Gst.init(None)
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("clean", help="clean speech with gansynth")
    p.add_argument("input")
    p.add_argument("output", help="OUT.flac, OUT.ogg or OUT.wav")
    p.add_argument("--strength", type=float, default=1.0)
    p.add_argument("--change-at", type=float, metavar="SECONDS",
                   help="set strength to --to from this position on")
    p.add_argument("--to", type=float, default=1.0, metavar="STRENGTH")
    p.set_defaults(func=cmd_clean)

    p = sub.add_parser("upscale", help="diffusionsr of a video into WebM")
    p.add_argument("input")
    p.add_argument("output")
    p.add_argument("--scale", type=int, default=2, choices=(2, 4))
    p.add_argument("--num-steps", type=int, default=0)
    p.set_defaults(func=cmd_upscale)

    p = sub.add_parser("latents", help="read vaeencode's attached latents")
    p.add_argument("input")
    p.add_argument("--frames", type=int, default=5, help="frames to print")
    p.set_defaults(func=cmd_latents)

    args = parser.parse_args()
    if Gst.ElementFactory.find("vaeencode") is None:
        sys.exit("generative-app: the generative plugin is not found "
                 "(inside the build tree: meson devenv -C build)")
    sys.exit(args.func(args))


if __name__ == "__main__":
    main()
