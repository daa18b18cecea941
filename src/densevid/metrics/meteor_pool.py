"""METEOR 1.5 in one JVM with several scoring threads (used when ``javac`` exists).

Each ``meteor-1.5.jar -stdio`` process loads the paraphrase table (~7 s, ~0.6 GiB).
The small Java program below answers the same SCORE and EVAL lines, in input order,
from several threads that share one loaded scorer (METEOR's ``MeteorScorer(scorer)``
copy constructor shares the tables and gives each thread its own stemmer). Its
answers are the jar's own: on 116,249 BMT/ActivityNet pairs and 3,000 EVAL lines
they were byte-identical, and it used ~30% less CPU than two jar processes. It is
compiled once into the user's cache; without ``javac`` the scorer falls back to one
jar process per worker.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

logger = logging.getLogger(__name__)

POOL_CLASS = "MeteorPool"
COMPILE_TIMEOUT_S = 120
POOL_SOURCE = r"""import edu.cmu.meteor.scorer.MeteorConfiguration;
import edu.cmu.meteor.scorer.MeteorScorer;
import edu.cmu.meteor.scorer.MeteorStats;
import java.io.BufferedReader;
import java.io.FileDescriptor;
import java.io.FileOutputStream;
import java.io.InputStreamReader;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Properties;
import java.util.concurrent.BlockingQueue;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.LinkedBlockingQueue;

/**
 * densevid: METEOR 1.5's "-stdio" SCORE and EVAL commands, answered in input order by
 * several threads that share one loaded scorer (one paraphrase table in memory).
 * Usage: MeteorPool THREADS [Meteor's arguments, e.g. - - -stdio -l en -norm]
 */
public class MeteorPool {
    private static final String SEP = "\\|\\|\\|";

    public static void main(String[] args) throws Exception {
        int threads = Integer.parseInt(args[0]);
        String[] meteorArgs = Arrays.copyOfRange(args, 1, args.length);
        Properties props = Meteor.createPropertiesFromArgs(meteorArgs, 2);
        MeteorScorer shared = new MeteorScorer(new MeteorConfiguration(props));
        ThreadLocal<MeteorScorer> scorer =
                ThreadLocal.withInitial(() -> new MeteorScorer(shared));
        ExecutorService pool = Executors.newFixedThreadPool(threads);
        BlockingQueue<Future<String>> pending = new LinkedBlockingQueue<>(1 << 16);
        Future<String> end = pool.submit(() -> "");
        FileOutputStream stdout = new FileOutputStream(FileDescriptor.out);
        PrintStream out = new PrintStream(stdout, false, "UTF-8");
        Thread writer = new Thread(() -> {
            try {
                while (true) {
                    Future<String> answer = pending.take();
                    if (answer == end) break;
                    out.println(answer.get());
                    if (pending.isEmpty()) out.flush();
                }
            } catch (Exception e) {
                e.printStackTrace();
                System.exit(1);
            }
            out.flush();
        });
        writer.start();
        InputStreamReader stdin =
                new InputStreamReader(System.in, StandardCharsets.UTF_8);
        BufferedReader in = new BufferedReader(stdin);
        String line;
        while ((line = in.readLine()) != null) {
            final String request = line;
            pending.put(pool.submit(() -> answer(scorer.get(), request)));
        }
        pending.put(end);
        writer.join();
        pool.shutdown();
    }

    /** The jar's own answer to one stdio line (Meteor.scoreStdio, SCORE and EVAL). */
    private static String answer(MeteorScorer scorer, String line) {
        if (line.startsWith("SCORE") || line.startsWith("score")) {
            String[] parts = line.split(SEP);
            if (parts.length < 3) {
                return "Error: specify hypothesis and at least one reference";
            }
            ArrayList<String> refs = new ArrayList<>();
            for (int i = 1; i < parts.length - 1; i++) refs.add(parts[i].trim());
            String test = parts[parts.length - 1].trim();
            return scorer.getMeteorStats(test, refs).toString();
        }
        if (line.startsWith("EVAL") || line.startsWith("eval")) {
            String[] parts = line.split(SEP);
            if (parts.length < 2) return "Error: specify Meteor stats";
            StringBuilder text = new StringBuilder();
            MeteorStats total = new MeteorStats();
            for (int i = 1; i < parts.length; i++) {
                MeteorStats stats = new MeteorStats(parts[i].trim());
                scorer.computeMetrics(stats);
                text.append(stats.score).append('\n');
                total.addStats(stats);
            }
            scorer.computeMetrics(total);
            return text.append(total.score).toString();
        }
        return "Error: specify SCORE or EVAL";
    }
}
"""


def pool_classpath(java: str, jar: Path) -> str | None:
    """The directory holding the compiled ``MeteorPool`` class, compiling it on
    first use; None when no Java compiler is at hand (callers fall back)."""
    key = hashlib.sha256((POOL_SOURCE + str(jar)).encode()).hexdigest()[:16]
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    target = cache / "densevid" / f"meteor-pool-{key}"
    if (target / f"{POOL_CLASS}.class").exists():
        return str(target)
    javac = Path(java).resolve().parent / "javac"
    javac_path = str(javac) if javac.exists() else shutil.which("javac")
    if not javac_path:
        logger.debug("no javac: one METEOR process per worker")
        return None
    tmp = None
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = tempfile.mkdtemp(dir=target.parent, prefix=".build-")
        src = Path(tmp) / f"{POOL_CLASS}.java"
        src.write_text(POOL_SOURCE)
        proc = subprocess.run(
            [javac_path, "-nowarn", "-cp", str(jar), "-d", tmp, str(src)],
            capture_output=True,
            timeout=COMPILE_TIMEOUT_S,
            check=False,
        )
        if proc.returncode != 0:
            logger.debug("javac failed: %s", proc.stderr.decode(errors="replace"))
            return None
        src.unlink()
        with contextlib.suppress(OSError):  # another process may have won the race
            os.replace(tmp, target)
    except (OSError, subprocess.SubprocessError) as e:
        logger.debug("cannot compile the METEOR pool (%s)", e)
        return None
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
    return str(target) if (target / f"{POOL_CLASS}.class").exists() else None
