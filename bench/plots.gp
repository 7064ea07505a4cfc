# PNG plots of the benchmark figures (bench/run.sh runs this).
#   gnuplot -e "datadir='DIR'; outdir='DIR'" bench/plots.gp
# The data files are written by hsbench (report.cc, write_plot_data); a
# figure whose data is missing is skipped.
if (!exists("datadir")) datadir = "."
if (!exists("outdir")) outdir = "."
have(f) = int(system("test -s '" . datadir . "/" . f . "' && echo 1 || echo 0"))
dat(f) = datadir . "/" . f

set terminal pngcairo size 1500,480 font "sans,10" noenhanced
set grid
set key top left

# 1. stop window against blocked threads, one colour per payload size:
#    points + bars = the spinner's gap covering the stop (median, min–max),
#    dashed = the stop measured inside hotsplice (median)
if (have("stop_apply_1.dat")) {
  set output outdir . "/stop_window.png"
  set multiplot layout 1,3 title "Stop window: seen by a spinning thread (median, bars min–max); dashed: measured inside hotsplice"
  set logscale x 2
  set logscale y 10
  set format y "%g"
  set xlabel "threads blocked in read()"
  set ylabel "µs"
  set xrange [0.7:370]
  set yrange [50:*]
  set key top left font "sans,8"
  do for [op in "apply revert replace"] {
    set title op
    plot for [i=1:4] dat("stop_" . op . "_" . word("1 10 100 1000", i) . ".dat") using 1:9:10:11 \
           with yerrorlines lc i title word("1 10 100 1000", i) . " fn", \
         for [i=1:4] dat("stop_" . op . "_" . word("1 10 100 1000", i) . ".dat") using 1:6 \
           with lines dt 2 lc i notitle, \
         300 with lines dt 3 lc rgb "gray30" title "0.3 ms", \
         1000 with lines dt 4 lc rgb "gray30" title "1 ms"
  }
  unset multiplot
  unset logscale
  set format y "% h"
  set xrange [*:*]
  set yrange [*:*]
  set key top left font "sans,10"
}

# 2. wall time of whole commands
if (have("wall.dat")) {
  set output outdir . "/wall.png"
  set terminal pngcairo size 1100,480 font "sans,10" noenhanced
  set title "Wall time of whole hotsplice commands (median, bars: min–max)"
  set style fill solid 0.5 border -1
  set boxwidth 0.6
  set ylabel "ms"
  set xlabel ""
  set xtics rotate by -20
  set yrange [0:*]
  unset key
  plot dat("wall.dat") using 0:2:xtic(1) with boxes lc rgb "#4682b4", \
       "" using 0:2:3:4 with yerrorbars lc rgb "black" pt 0
  set xtics norotate
  set yrange [*:*]
  set key top left
}

# 3. upload time against payload size
if (have("upload_big.dat")) {
  set output outdir . "/upload.png"
  set terminal pngcairo size 900,520 font "sans,10" noenhanced
  set title "upload: wall time of the whole command against payload size"
  set logscale x 10
  set xlabel "functions in the payload"
  set ylabel "ms"
  set yrange [0:*]
  set offsets 0, 0, graph 0.1, 0
  plot dat("upload_small.dat") using 2:3:4:5 with yerrorlines title "small functions (~20 B each)", \
       dat("upload_big.dat") using 2:3:4:5 with yerrorlines title "3 KiB functions (1000 fn = 3 MiB)", \
       50 with lines dt 2 lc rgb "gray40" title "50 ms goal (1000 fn)"
  unset logscale
  set offsets 0, 0, 0, 0
  set yrange [*:*]
}

# 4. call overhead (% over a direct call)
if (have("call.dat")) {
  set output outdir . "/call.png"
  set terminal pngcairo size 800,480 font "sans,10" noenhanced
  set title "Patched call against a direct call to the replacement (best ns/call)"
  set style data histogram
  set style histogram clustered gap 1
  set style fill solid 0.6 border -1
  set boxwidth 0.9
  set ylabel "extra time per call (%)"
  set xlabel ""
  set yrange [*:*]
  set key top right
  plot dat("call.dat") using 2:xtic(1) title "self-patched, replacement adjacent", \
       "" using 3 title "self-patched, replacement 1 GiB away", \
       "" using 4 title "patched by hotsplice (call redirected)", \
       "" using 5 title "patched by hotsplice --entry-only", \
       2 with lines dt 2 lc rgb "gray40" title "2 % goal"
  set style data points
  set key top left
}

# 5. throughput timeline
if (have("throughput.dat")) {
  set output outdir . "/throughput.png"
  set terminal pngcairo size 1100,480 font "sans,10" noenhanced
  set title "tcp_server requests/s, 1-s samples (patching: apply + revert every second)"
  set xlabel "s"
  set ylabel "requests/s"
  set yrange [0:*]
  plot dat("throughput.dat") using 1:2 with lines lc rgb "gray70" notitle, \
       "" using 1:($3 == 0 ? $2 : 1/0) with points pt 7 lc rgb "#2e8b57" title "baseline", \
       "" using 1:($3 == 1 ? $2 : 1/0) with points pt 9 lc rgb "#b22222" title "patching"
}
