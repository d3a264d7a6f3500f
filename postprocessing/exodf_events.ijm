// exodf_events.ijm - ExoDeepFinder probabilities -> exocytosis events (ImageJ Results: X, Y, Slice).
//
// Input: the class probabilities of the ExoDeepFinder bioimage.io model, as deepImageJ shows them (3 channels
// background / bright spot / exocytosis, time on z-slices) or as `exodf detect --probabilities` writes them
// (ImageJ hyperstack, time on frames). A one-channel image is taken as the exocytosis probability alone.
// Events: the voxels labelled exocytosis (the exocytosis probability is the largest of the three; with
// one channel: above `threshold`), clustered as exodf does: 3D connected components (26-connected over x,
// y, time) grouped when closer than two bandwidths, then mean-shift (flat kernel, seeds on the bandwidth
// grid, as scikit-learn's MeanShift with bin seeding); one event per mode. X and Y are in pixels (the centre of the first pixel is
// 0, as in exodf), Slice is the 1-based frame of the centroid (may be fractional).
// Columns: X, Y, Slice, Score (mean exocytosis probability of the event's voxels), Size (its voxels);
// rows in time order.
//
// Run on the current image (Plugins > Macros > Run...), or headless:
//   xvfb-run -a java -jar ij.jar -batch exodf_events.ijm "input=[/path/probs.tif] output=[/path/events.csv]"
// (brackets keep paths with spaces whole). `output` is written on success only, also with no event (the
// header line alone), and an older file of that name is removed first: ImageJ's exit status is 0 even
// when a macro stops on an error, so a missing output file is how a script tells a failed run (the last line
// printed is "exodf_events: done, N events in T frames" on success; `exodf fiji macro` fails without it).
// The agreement with exodf's events is tested in exodf's tests/test_postprocessing_macro.py.

// ---- parameters -----------------------------------------------------------------------------------------
exoChannel = 3;      // channel of the exocytosis probability (1-based) in a 3-channel image
useArgmax = true;    // 3 channels: exocytosis wins over background and bright spot (as exodf); false: threshold
threshold = 0.5;     // exocytosis probability threshold (one channel, or useArgmax = false)
minSize = 1;         // drop events of fewer voxels
minScore = 0;        // drop events whose mean exocytosis probability is lower
bandwidth = 5;       // mean-shift bandwidth (voxels), as exodf's ClusterConfig.bandwidth
maxShare = 0.05;     // stop when more of the voxels than this are exocytosis: not a model's output (hours)
// ---------------------------------------------------------------------------------------------------------

var parent = newArray(0);   // union-find forest over the exocytosis voxels (global: used by the helpers)

setOption("ExpandableArrays", true);
args = getArgument();
input = argValue(args, "input");
output = argValue(args, "output");
bwArg = argValue(args, "bandwidth");  // bandwidth=N overrides the parameter above (note: ImageJ 1.53t hangs
if (bwArg != "") {                    // on a user function called inside an if's condition: keep it outside)
    bandwidth = parseFloat(bwArg);
    if (isNaN(bandwidth) || bandwidth <= 0) exit("exodf_events: bandwidth must be a number > 0, got " + bwArg);
}
if (lastIndexOf(output, File.separator) > 0 || lastIndexOf(output, "/") > 0) {  // (nested: && does not stop)
    folder = File.getParent(output);         // (a failed File.saveString would open an error dialog)
    if (!File.isDirectory(folder)) exit("exodf_events: could not write " + output + ": its folder does not exist");
}
if (output != "" && File.exists(output)) {
    if (!File.delete(output)) exit("exodf_events: cannot replace " + output + "; is it open or read-only?");
}
if (input != "" && !File.exists(input))
    exit("exodf_events: input " + input + " not found (give input=[PATH], brackets around a path with spaces)");
if (input != "") {
    setBatchMode(true);
    imagesBefore = nImages;  // (not "before": a function below)
    open(input);
    if (nImages == imagesBefore)
        exit("exodf_events: could not open " + input + "; save the probabilities as a TIFF from ImageJ (File > "
             + "Save As > Tiff...)");
}
if (nImages == 0)
    exit("exodf_events: open the probability image first (or pass input=PATH)");
source = getImageID();
sourceTitle = getTitle();
getDimensions(width, height, channels, slices, frames);
nT = slices * frames;
if (slices > 1 && frames > 1) {
    hint = "";
    if (channels == 1 && (slices == 3 || frames == 3))
        hint = " (are the 3 the classes? make them channels: Image > Hyperstacks > Re-order Hyperstack)";
    exit("exodf_events: the image has both z-slices and frames; time must be on one of them" + hint);
}
if (bitDepth() != 32)
    exit("exodf_events: " + getTitle() + " is a " + bitDepth() + "-bit image, not the model's 32-bit probabilities: "
         + "give the model's own output (a raw movie must go through the model first; a conversion to 8 or 16 "
         + "bits changes the values)");
if (channels != 1 && channels != 3)
    exit("exodf_events: " + getTitle() + " has " + channels + " channels; give the model's 3 class probabilities "
         + "(background, bright spot, exocytosis) or the exocytosis probability alone");
if (channels == 3 && (exoChannel < 1 || exoChannel > 3))
    exit("exodf_events: exoChannel must be 1, 2 or 3, got " + exoChannel);
if (nSlices > 1)
    Stack.getStatistics(voxels, meanValue, minValue, maxValue);
else
    getStatistics(voxels, meanValue, minValue, maxValue);   // (Stack.getStatistics never returns on one image)
if (minValue < 0 || maxValue > 1.0001)
    exit("exodf_events: " + getTitle() + " holds values from " + minValue + " to " + maxValue + ", not probabilities "
         + "(0-1): run the model on the movie first and give its output");
setBatchMode(true);

// exo: the exocytosis probability stack; fg: a 32-bit stack > 0 exactly at exocytosis voxels
exo = channelStack(source, channels, exoChannel, "exodf_exo");
if (channels >= 3 && useArgmax) {
    other1 = 1; other2 = 2;
    if (exoChannel == 1) { other1 = 2; other2 = 3; }
    if (exoChannel == 2) { other1 = 1; other2 = 3; }
    c1 = channelStack(source, channels, other1, "exodf_c1");
    c2 = channelStack(source, channels, other2, "exodf_c2");
    imageCalculator("Max stack", c1, c2);
    close(c2);
    imageCalculator("Subtract create 32-bit stack", exo, c1);
    fg = getImageID();
    close(c1);
    lower = 1e-30;                     // exo - max(others) > 0
} else {
    selectImage(exo);
    run("Duplicate...", "title=exodf_fg duplicate");
    fg = getImageID();
    lower = threshold + 1e-7;          // p > threshold
}

// Two label rows side by side (previous frame | current frame) hold voxel ids + 1 for the neighbour look-up.
newImage("exodf_ids", "32-bit black", 2 * width, height, 1);
ids = getImageID();
vx = newArray(0); vy = newArray(0); vz = newArray(0); vp = newArray(0);
n = 0;
slotStart = newArray(0, 0); slotEnd = newArray(0, 0);
for (z = 0; z < nT; z++) {
    slot = z % 2;
    other = 1 - slot;
    selectImage(ids);
    for (k = slotStart[slot]; k < slotEnd[slot]; k++)   // clear what frame z - 2 left in this slot
        setPixel(vx[k] + slot * width, vy[k], 0);
    slotStart[slot] = n; slotEnd[slot] = n;
    selectImage(fg);
    setSlice(z + 1);
    getStatistics(area, mean, smin, smax);
    if (smax < lower)
        continue;
    setThreshold(lower, 1e30);
    run("Create Selection");
    Roi.getContainedPoints(xs, ys);
    run("Select None");
    resetThreshold();
    selectImage(exo);
    setSlice(z + 1);
    first = n;
    if (n + xs.length > maxShare * width * height * nT) {
        hint = "";
        if (channels == 1 && nT % 3 == 0)
            hint = "; a plain stack of 3 x " + nT / 3 + " images holds the 3 classes interleaved: make them "
                   + "channels (Image > Hyperstacks > Stack to Hyperstack, 3 channels)";
        exit("exodf_events: more than " + d2s(100 * maxShare, 0) + " % of the voxels of " + sourceTitle + " are "
             + "exocytosis (the model's output holds well under 1 %): is it the model's output? (for a small crop "
             + "around events, raise maxShare at the top of this macro)" + hint);
    }
    for (i = 0; i < xs.length; i++) {
        vx[n] = xs[i]; vy[n] = ys[i]; vz[n] = z; vp[n] = getPixel(xs[i], ys[i]); parent[n] = n;
        n++;
    }
    slotEnd[slot] = n;
    selectImage(ids);
    for (k = first; k < n; k++)
        setPixel(vx[k] + slot * width, vy[k], k + 1);
    for (k = first; k < n; k++) {
        for (dy = -1; dy <= 1; dy++) {
            y = vy[k] + dy;
            if (y < 0 || y >= height) continue;
            for (dx = -1; dx <= 1; dx++) {
                x = vx[k] + dx;
                if (x < 0 || x >= width) continue;
                j = getPixel(x + slot * width, y) - 1;          // same frame
                if (j >= 0) join(k, j);
                if (z > 0) {
                    j = getPixel(x + other * width, y) - 1;     // previous frame (its slot holds frame z - 1)
                    if (j >= 0) join(k, j);
                }
            }
        }
    }
}

// Groups: components whose bounding boxes, grown by two bandwidths, overlap (as exodf's cluster.py).
comp = newArray(n);
bx0 = newArray(0); bx1 = newArray(0); by0 = newArray(0); by1 = newArray(0); bz0 = newArray(0); bz1 = newArray(0);
nc = 0;
for (k = 0; k < n; k++) {
    r = root(k);
    if (r == k) { comp[k] = nc; bx0[nc] = 1e9; bx1[nc] = -1; by0[nc] = 1e9; by1[nc] = -1; bz0[nc] = 1e9; bz1[nc] = -1; nc++; }
}
for (k = 0; k < n; k++) {
    c = comp[root(k)];
    comp[k] = c;
    bx0[c] = minOf(bx0[c], vx[k]); bx1[c] = maxOf(bx1[c], vx[k]);
    by0[c] = minOf(by0[c], vy[k]); by1[c] = maxOf(by1[c], vy[k]);
    bz0[c] = minOf(bz0[c], vz[k]); bz1[c] = maxOf(bz1[c], vz[k]);
}
parent = newArray(nc);
for (c = 0; c < nc; c++) parent[c] = c;
gap = 2 * bandwidth;
for (a = 0; a < nc; a++) {
    for (b = a + 1; b < nc; b++) {
        if (bz0[b] - gap > bz1[a] + gap) continue;
        if (bz0[a] - gap <= bz1[b] + gap && by0[a] - gap <= by1[b] + gap && by0[b] - gap <= by1[a] + gap
            && bx0[a] - gap <= bx1[b] + gap && bx0[b] - gap <= bx1[a] + gap)
            join(a, b);
    }
}
// voxels ordered by group (counting sort)
ng = 0;
gid = newArray(nc);
for (c = 0; c < nc; c++) if (root(c) == c) { gid[c] = ng; ng++; }
gcount = newArray(ng + 1);
for (k = 0; k < n; k++) { g = gid[root(comp[k])]; comp[k] = g; gcount[g + 1] += 1; }
for (g = 0; g < ng; g++) gcount[g + 1] += gcount[g];
nextSlot = Array.copy(gcount);
order = newArray(n);
for (k = 0; k < n; k++) { order[nextSlot[comp[k]]] = k; nextSlot[comp[k]] += 1; }

// Seeds, as scikit-learn's MeanShift(bin_seeding=True) picks them for all the voxels at once: the distinct
// rounded (p / bandwidth), times bandwidth (groups never share one: they are two bandwidths apart), or the
// voxels themselves when every voxel has a bin of its own.
gseed = newArray(ng + 1);  // group g's seeds are seedT/Y/X[gseed[g] .. gseed[g + 1] - 1]
seedT = newArray(0); seedY = newArray(0); seedX = newArray(0); nseeds = 0;
for (g = 0; g < ng; g++) {
    g0 = gcount[g]; g1 = gcount[g + 1];
    gseed[g] = nseeds;
    for (i = g0; i < g1; i++) {
        k = order[i];
        qt = bandwidth * roundHalfEven(vz[k] / bandwidth); qy = bandwidth * roundHalfEven(vy[k] / bandwidth);
        qx = bandwidth * roundHalfEven(vx[k] / bandwidth);
        dup = false;
        for (j = gseed[g]; j < nseeds; j++) if (seedT[j] == qt && seedY[j] == qy && seedX[j] == qx) { dup = true; j = nseeds; }
        if (!dup) { seedT[nseeds] = qt; seedY[nseeds] = qy; seedX[nseeds] = qx; nseeds++; }
    }
}
gseed[ng] = nseeds;
if (nseeds == n) {  // one bin per voxel: each group's seeds are its voxels, in the same slots
    for (i = 0; i < n; i++) { k = order[i]; seedT[i] = vz[k]; seedY[i] = vy[k]; seedX[i] = vx[k]; }
}

// Mean-shift of each group: flat kernel.
run("Clear Results");
row = 0;
bw2 = bandwidth * bandwidth;
for (g = 0; g < ng; g++) {
    g0 = gcount[g]; g1 = gcount[g + 1];
    // shift every seed to its mode
    ct = newArray(0); cy = newArray(0); cx = newArray(0); cn = newArray(0); nm = 0;
    for (j = gseed[g]; j < gseed[g + 1]; j++) {
        mt = seedT[j]; my = seedY[j]; mx = seedX[j]; inside = 0;
        for (it = 0; it <= 300; it++) {
            at = 0; ay = 0; ax = 0; inside = 0;
            for (i = g0; i < g1; i++) {
                k = order[i];
                d2 = (vz[k] - mt) * (vz[k] - mt) + (vy[k] - my) * (vy[k] - my) + (vx[k] - mx) * (vx[k] - mx);
                if (d2 <= bw2) { at += vz[k]; ay += vy[k]; ax += vx[k]; inside++; }
            }
            if (inside == 0) it = 301;
            else {
                nt = at / inside; ny = ay / inside; nx = ax / inside;
                shift = sqrt((nt - mt) * (nt - mt) + (ny - my) * (ny - my) + (nx - mx) * (nx - mx));
                mt = nt; my = ny; mx = nx;
                if (shift <= 1e-3 * bandwidth) it = 301;
            }
        }
        if (inside > 0) {
            dup = false;
            for (i = 0; i < nm; i++) if (ct[i] == mt && cy[i] == my && cx[i] == mx) { dup = true; i = nm; }
            if (!dup) { ct[nm] = mt; cy[nm] = my; cx[nm] = mx; cn[nm] = inside; nm++; }
        }
    }
    // by decreasing (points within, t, y, x); then drop modes within a bandwidth of a stronger one
    rank = Array.getSequence(nm);
    for (i = 1; i < nm; i++) {
        for (j = i; j > 0; j--) {
            if (!before(rank[j], rank[j - 1], cn, ct, cy, cx)) j = 0;
            else { tmp = rank[j]; rank[j] = rank[j - 1]; rank[j - 1] = tmp; }
        }
    }
    keep = newArray(nm);
    Array.fill(keep, 1);
    for (i = 0; i < nm; i++) {
        a = rank[i];
        if (keep[i] == 1) {
            for (j = 0; j < nm; j++) {
                b = rank[j];
                if ((ct[a] - ct[b]) * (ct[a] - ct[b]) + (cy[a] - cy[b]) * (cy[a] - cy[b])
                    + (cx[a] - cx[b]) * (cx[a] - cx[b]) <= bw2) keep[j] = 0;
            }
            keep[i] = 1;
        }
    }
    kc = newArray(0); nk = 0;
    for (i = 0; i < nm; i++) if (keep[i] == 1) { kc[nk] = rank[i]; nk++; }
    // every voxel to its nearest mode
    msize = newArray(nk); mscore = newArray(nk);
    for (i = g0; i < g1; i++) {
        k = order[i];
        best = -1; bestd = 1e30;
        for (j = 0; j < nk; j++) {
            a = kc[j];
            d2 = (vz[k] - ct[a]) * (vz[k] - ct[a]) + (vy[k] - cy[a]) * (vy[k] - cy[a]) + (vx[k] - cx[a]) * (vx[k] - cx[a]);
            if (d2 < bestd) { bestd = d2; best = j; }
        }
        msize[best] += 1; mscore[best] += vp[k];
    }
    for (j = 0; j < nk; j++) {
        if (msize[j] < minSize || msize[j] == 0) continue;
        if (mscore[j] / msize[j] < minScore) continue;
        a = kc[j];
        setResult("X", row, cx[a]);
        setResult("Y", row, cy[a]);
        setResult("Slice", row, ct[a] + 1);
        setResult("Score", row, mscore[j] / msize[j]);
        setResult("Size", row, msize[j]);
        row++;
    }
}
updateResults();
if (row > 1) Table.sort("Slice");  // in time order, as exodf writes its tables
selectImage(ids); close();
selectImage(fg); close();
selectImage(exo); close();
if (output != "") {
    if (row > 0) saveAs("Results", output);
    else {  // ImageJ saves nothing for an empty table: write the header line alone, as exodf does (and
        sep = ",";  // as ImageJ heads a table with row numbers, its default)
        low = toLowerCase(output);
        if (!endsWith(low, ".csv")) sep = "\t";
        File.saveString(" " + sep + "X" + sep + "Y" + sep + "Slice" + sep + "Score" + sep + "Size\n", output);
    }
    if (!File.exists(output))  // ImageJ only prints a failed save and goes on
        exit("exodf_events: could not write " + output + "; does its folder exist, and is it writable?");
}
if (output == "" && input != "")  // (run headless without output=: the events would be lost unseen)
    print("exodf_events: no output=PATH given: the events are in the Results table only, not saved");
print("exodf_events: done, " + row + " events in " + nT + " frames");

// ---- helpers --------------------------------------------------------------------------------------------
// numpy's round (halves to even), as scikit-learn bins the seeds; ImageJ's round() takes halves up
function roundHalfEven(v) {
    r = floor(v + 0.5);
    if (r - v == 0.5 && r % 2 != 0) r = r - 1;
    return r;
}

function root(i) {
    while (parent[i] != i) {
        parent[i] = parent[parent[i]];
        i = parent[i];
    }
    return i;
}

function before(a, b, cn, ct, cy, cx) {
    // true if mode a sorts before mode b: more points within, then larger (t, y, x)
    if (cn[a] > cn[b]) return true;
    if (cn[a] < cn[b]) return false;
    if (ct[a] > ct[b]) return true;
    if (ct[a] < ct[b]) return false;
    if (cy[a] > cy[b]) return true;
    if (cy[a] < cy[b]) return false;
    if (cx[a] > cx[b]) return true;
    return false;
}

function join(a, b) {
    ra = root(a); rb = root(b);
    if (ra < rb) parent[rb] = ra;
    else if (rb < ra) parent[ra] = rb;
}

function channelStack(id, channels, c, title) {
    // one channel of the image as a plain stack of its time points (32-bit)
    selectImage(id);
    if (channels > 1)
        run("Duplicate...", "title=" + title + " duplicate channels=" + c);
    else
        run("Duplicate...", "title=" + title + " duplicate");
    if (bitDepth() != 32) run("32-bit");
    return getImageID();
}

function argValue(text, key) {
    // value of key=VALUE in a space-separated argument string ("" if absent); VALUE may be [quoted], and
    // an unquoted VALUE runs up to the next key= (so that a path with single spaces also stays whole)
    parts = split(text, " ");
    for (i = 0; i < parts.length; i++) {
        if (startsWith(parts[i], key + "=")) {
            v = substring(parts[i], lengthOf(key) + 1);
            if (startsWith(v, "[")) {
                while (!endsWith(v, "]") && i + 1 < parts.length) { i++; v = v + " " + parts[i]; }
                v = substring(v, 1, lengthOf(v) - 1);
            } else {
                more = true;  // (no short-circuit && in the macro language: parts[i + 1] only when it exists)
                while (more) {
                    more = false;
                    if (i + 1 < parts.length) more = !matches(parts[i + 1], "[A-Za-z_]+=.*");
                    if (more) { i++; v = v + " " + parts[i]; }
                }
            }
            return v;
        }
    }
    return "";
}
