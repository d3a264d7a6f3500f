// exodf: functions shared by the exodf macro set and the batch macro (ImageJ 1.53t or later, Fiji).
// `exodf fiji install` puts them, with the exodf command line filled in, into Fiji.app/macros.

// Save the current image as a TIFF exodf can read; returns its path. An unmodified .tif on disk is
// used as it is; anything else is duplicated and saved into ImageJ's temporary folder.
function exodfSaveCurrent() {
	dir = getInfo("image.directory");
	name = getInfo("image.filename");
	lower = toLowerCase(name);
	if (dir != "" && (endsWith(lower, ".tif") || endsWith(lower, ".tiff")) && !is("changes"))
		return dir + name;
	id = getImageID();
	base = replace(getTitle(), "[^A-Za-z0-9_.-]", "_");
	path = getDirectory("temp") + "exodf_" + base;
	if (!endsWith(toLowerCase(path), ".tif")) path = path + ".tif";
	selected = selectionType() != -1;
	setBatchMode(true);
	run("Select None");  // a selection would crop the copy: exodf would see part of the movie
	run("Duplicate...", "title=exodf_copy duplicate");
	saveAs("Tiff", path);
	close();
	selectImage(id);
	if (selected) run("Restore Selection");
	setBatchMode(false);
	return path;
}

// exec() with one argument per array element, so that paths with spaces stay whole.
// (exec(array) is not available in every ImageJ 1.x, hence the explicit forms.)
function exodfExec(a) {
	n = a.length;
	if (n == 1) return exec(a[0]);
	if (n == 2) return exec(a[0], a[1]);
	if (n == 3) return exec(a[0], a[1], a[2]);
	if (n == 4) return exec(a[0], a[1], a[2], a[3]);
	if (n == 5) return exec(a[0], a[1], a[2], a[3], a[4]);
	if (n == 6) return exec(a[0], a[1], a[2], a[3], a[4], a[5]);
	if (n == 7) return exec(a[0], a[1], a[2], a[3], a[4], a[5], a[6]);
	if (n == 8) return exec(a[0], a[1], a[2], a[3], a[4], a[5], a[6], a[7]);
	if (n == 9) return exec(a[0], a[1], a[2], a[3], a[4], a[5], a[6], a[7], a[8]);
	if (n == 10) return exec(a[0], a[1], a[2], a[3], a[4], a[5], a[6], a[7], a[8], a[9]);
	if (n == 11) return exec(a[0], a[1], a[2], a[3], a[4], a[5], a[6], a[7], a[8], a[9], a[10]);
	if (n == 12) return exec(a[0], a[1], a[2], a[3], a[4], a[5], a[6], a[7], a[8], a[9], a[10], a[11]);
	if (n == 13) return exec(a[0], a[1], a[2], a[3], a[4], a[5], a[6], a[7], a[8], a[9], a[10], a[11], a[12]);
	if (n == 14) return exec(a[0], a[1], a[2], a[3], a[4], a[5], a[6], a[7], a[8], a[9], a[10], a[11], a[12], a[13]);
	if (n == 15) return exec(a[0], a[1], a[2], a[3], a[4], a[5], a[6], a[7], a[8], a[9], a[10], a[11], a[12], a[13], a[14]);
	if (n == 16) return exec(a[0], a[1], a[2], a[3], a[4], a[5], a[6], a[7], a[8], a[9], a[10], a[11], a[12], a[13], a[14], a[15]);
	if (n == 17) return exec(a[0], a[1], a[2], a[3], a[4], a[5], a[6], a[7], a[8], a[9], a[10], a[11], a[12], a[13], a[14], a[15], a[16]);
	if (n == 18) return exec(a[0], a[1], a[2], a[3], a[4], a[5], a[6], a[7], a[8], a[9], a[10], a[11], a[12], a[13], a[14], a[15], a[16], a[17]);
	if (n == 19) return exec(a[0], a[1], a[2], a[3], a[4], a[5], a[6], a[7], a[8], a[9], a[10], a[11], a[12], a[13], a[14], a[15], a[16], a[17], a[18]);
	if (n == 20) return exec(a[0], a[1], a[2], a[3], a[4], a[5], a[6], a[7], a[8], a[9], a[10], a[11], a[12], a[13], a[14], a[15], a[16], a[17], a[18], a[19]);
	if (n == 21) return exec(a[0], a[1], a[2], a[3], a[4], a[5], a[6], a[7], a[8], a[9], a[10], a[11], a[12], a[13], a[14], a[15], a[16], a[17], a[18], a[19], a[20]);
	if (n == 22) return exec(a[0], a[1], a[2], a[3], a[4], a[5], a[6], a[7], a[8], a[9], a[10], a[11], a[12], a[13], a[14], a[15], a[16], a[17], a[18], a[19], a[20], a[21]);
	if (n == 23) return exec(a[0], a[1], a[2], a[3], a[4], a[5], a[6], a[7], a[8], a[9], a[10], a[11], a[12], a[13], a[14], a[15], a[16], a[17], a[18], a[19], a[20], a[21], a[22]);
	if (n == 24) return exec(a[0], a[1], a[2], a[3], a[4], a[5], a[6], a[7], a[8], a[9], a[10], a[11], a[12], a[13], a[14], a[15], a[16], a[17], a[18], a[19], a[20], a[21], a[22], a[23]);
	exit("exodf: too many command-line elements (" + n + "); at most 24");
}

// Run `exodf detect MOVIE -o EVENTS --quiet [options]`; options: extra elements, one per line.
function exodfDetect(movie, events, options) {
	// (ImageJ 1.53t: Array.concat fails on a function call as argument, so every part is a variable)
	a = split(exodfCommand, "\n");
	part = newArray("--errors-to-stdout", "detect", movie, "-o", events, "--quiet");  // exec() shows stdout only
	a = Array.concat(a, part);
	if (options != "") {
		part = split(options, "\n");
		a = Array.concat(a, part);
	}
	if (File.exists(events)) ok = File.delete(events);
	out = exodfExec(a);
	if (!File.exists(events)) {
		command = exodfQuoted(a);
		at = indexOf(out, "exodf: error:");
		if (at >= 0)
			exit(substring(out, at) + "\nCommand: " + command);
		why = "exodf printed nothing: is the command's Python one with exodf installed?";
		if (String.trim(out) != "") why = "its output: " + String.trim(out);
		exit("exodf detect wrote no event table " + events + "; " + why + "\nCommand: " + command +
		     "\nRun that command in a terminal to see the error. If exodf moved (a new Python or environment), "
		     + "run `exodf fiji install --fiji FIJI.app` again from it, or edit the line `var exodfCommand = ...` "
		     + "at the top of this macro (Fiji.app/macros/toolsets/exodf.ijm, macros/exodf_batch.ijm).");
	}
	return out;
}

// The command line a as a terminal takes it: elements with spaces or quotes in single quotes.
function exodfQuoted(a) {
	s = "";
	for (i = 0; i < a.length; i++) {
		e = a[i];
		if (e == "" || matches(e, ".*[ \t'\"$;&|()<>*?].*")) e = "'" + replace(e, "'", "'\\\\''") + "'";
		if (i > 0) s = s + " ";
		s = s + e;
	}
	return s;
}

// Fill the Results table from an ImageJ Results csv/txt (as exodf writes it, or Excel re-saves it): one
// column per heading, the row-number column (heading " " or empty) left out, time as "Slice" (1-based; from
// Frame or T as well, and from exodf's 0-based lower-case "frame"). Comma-, tab- or ';'-separated (decimal
// commas in the last two), quoted headings and a UTF-8 byte-order mark are read as exodf reads them.
function exodfLoadResults(path) {
	if (!File.exists(path)) exit("exodf: event table " + path + " not found");
	text = replace(File.openAsString(path), "\r", "");
	if (startsWith(text, fromCharCode(65279))) text = substring(text, 1);  // a byte-order mark (Excel)
	lines = split(text, "\n");
	if (lines.length == 0) exit("exodf: " + path + " is empty; an event table needs a header X,Y,Slice");
	sep = ",";  // (a single comma or ';', or a regular expression, keeps empty fields; "\t" would merge them)
	if (indexOf(lines[0], "\t") >= 0) sep = "(\t)";
	else if (indexOf(lines[0], ";") >= 0 && indexOf(lines[0], ",") < 0) sep = ";";
	heads = exodfFields(lines[0], sep);
	ix = -1; iy = -1; isl = -1; ifr = -1; it = -1; first = 1;
	for (j = 0; j < heads.length; j++) {  // the first of each
		heads[j] = String.trim(replace(heads[j], "\"", ""));
		low = toLowerCase(heads[j]);
		if (low == "x" && ix < 0) ix = j;
		if (low == "y" && iy < 0) iy = j;
		if (low == "slice" && isl < 0) isl = j;
		if (low == "frame" && ifr < 0) ifr = j;
		if (low == "t" && it < 0) it = j;
	}
	if (ifr >= 0) {  // time on Frame, unless Slice counts it (Slice first, then Frame, then T)
		it = ifr;
		if (matches(heads[ifr], "frame")) first = 0;  // exodf's own 0-based name (== ignores case)
	}
	if (isl >= 0 && ifr >= 0) {  // measured on a hyperstack: Slice is the z-plane (1), Frame the time point
		vs = exodfColumnValue(lines, sep, isl);
		vf = exodfColumnValue(lines, sep, ifr);
		if (vs == "varies" && vf == "varies")
			exit("exodf: both Slice and Frame vary in " + path + ", so it is unclear which counts time (a z-stack "
			     + "over time?); keep the time column only, or save one z-plane's events");
		if (vf != "varies" && (vs == "varies" || !(vs == "" || parseFloat(vs) == 1) || vf == "" || parseFloat(vf) == 1)) {
			it = isl; first = 1;
		}
	} else if (isl >= 0) {
		it = isl; first = 1;
	}
	if (ix < 0 || iy < 0 || it < 0)
		exit("exodf: " + path + " lacks the columns X, Y and Slice (or Frame); save the ImageJ Results table with "
		     + "X, Y and Slice (its header: " + lines[0] + ")");
	run("Clear Results");
	row = 0;
	for (i = 1; i < lines.length; i++) {
		if (lengthOf(replace(lines[i], "[,;\t ]", "")) == 0) continue;  // (Excel's ",,,")
		cells = exodfFields(lines[i], sep);
		for (j = 0; j < heads.length && j < cells.length; j++) {
			cell = exodfCellText(cells[j], sep);
			v = parseFloat(cell);
			if (j == it) setResult("Slice", row, v + 1 - first);
			else if (j == isl || j == ifr) skip = j;  // the other of Slice and Frame (a z-plane) would overwrite the time
			else if (j == ix) setResult("X", row, v);
			else if (j == iy) setResult("Y", row, v);
			else if (heads[j] != "") {
				cell = String.trim(cell);
				if (isNaN(v) && cell != "" && toLowerCase(cell) != "nan") setResult(heads[j], row, cell);  // text
				else setResult(heads[j], row, v);
			}
		}
		row++;
	}
	updateResults();
	return row;
}

// The fields of a table line: split at sep ("," ";" or "(\t)"), keeping a quoted field with sep inside whole
// (quotes are removed later, with the other quotes).
function exodfFields(line, sep) {
	if (indexOf(line, "\"") < 0) return split(line, sep);
	c = ","; if (sep == ";") c = ";"; if (sep == "(\t)") c = "\t";
	out = newArray(0); field = ""; quoted = false;
	for (k = 0; k < lengthOf(line); k++) {
		ch = substring(line, k, k + 1);
		if (ch == "\"") quoted = !quoted;
		if (ch == c && !quoted) { out = Array.concat(out, field); field = ""; }
		else field = field + ch;
	}
	return Array.concat(out, field);
}

// A field's text as exodf reads it: quotes removed, a decimal comma made a point (in ';' and tab tables).
function exodfCellText(cell, sep) {
	cell = replace(cell, "\"", "");
	if (sep != ",") cell = replace(cell, ",", ".");
	return cell;
}

// The one value of column j of a table's lines (after the header) as a number string, "" with no row, or
// "varies" (as exodf tells which of Slice and Frame counts time).
function exodfColumnValue(lines, sep, j) {
	v = "";
	for (i = 1; i < lines.length; i++) {
		cells = exodfFields(lines[i], sep);
		if (j >= cells.length || lengthOf(replace(lines[i], "[,;\t ]", "")) == 0) continue;
		x = "" + parseFloat(exodfCellText(cells[j], sep));
		if (v == "") v = x;
		else if (x != v) return "varies";
	}
	return v;
}

// Write the Results table with 9 decimals (ImageJ's own Results saving keeps 3 by default); with no
// event, the header line alone (X,Y,Slice), which exodf reads as an empty table.
function exodfSaveResults(path) {
	if (nResults == 0) {
		File.saveString("X,Y,Slice\n", path);
		return;
	}
	heads = split(String.getResultsHeadings, "\t");
	text = " ";
	for (j = 0; j < heads.length; j++) if (heads[j] != " " && heads[j] != "") text = text + "," + heads[j];
	text = text + "\n";
	for (i = 0; i < nResults; i++) {
		line = "" + (i + 1);
		for (j = 0; j < heads.length; j++)
			if (heads[j] != " " && heads[j] != "") line = line + "," + exodfCell(heads[j], i);
		text = text + line + "\n";
	}
	File.saveString(text, path);
}

// Row i of a Results column as a csv field: a number with 9 decimals, a text (e.g. a Label) quoted when needed.
function exodfCell(heading, i) {
	v = getResult(heading, i);
	if (!isNaN(v)) return d2s(v, 9);
	t = getResultString(heading, i);
	if (toLowerCase(t) == "nan" || t == "null") return "NaN";
	if (indexOf(t, ",") >= 0 || indexOf(t, "\"") >= 0) t = "\"" + replace(t, "\"", "\"\"") + "\"";
	return t;
}

// The pixel size given to exodf in an option list (one element per line: "--pixel-size", "0.16"), else 1:
// with it, exodf writes X/Y calibrated, and the overlay must divide them by it.
function exodfTableScale(options) {
	a = split(options, "\n");
	for (i = 0; i < a.length; i++) {
		if (a[i] == "--pixel-size" && i + 1 < a.length) return parseFloat(a[i + 1]);
		if (startsWith(a[i], "--pixel-size=")) return parseFloat(substring(a[i], 13));
	}
	return 1;
}

// One circle (radius exodfRadius px) per event on each frame from Slice-exodfBefore to Slice+exodfAfter.
// scale: the table's X/Y units per pixel (1: pixels; the pixel size for a calibrated table).
// Returns the number of ROIs added to the current image's overlay.
function exodfDrawOverlay(scale) {
	if (!(scale > 0)) exit("exodf: the pixel size of the event table must be > 0, got " + scale);
	sel = selectionType();  // the user's selection (a cell outline?) comes back after the circles
	if (sel == 0 || sel == 1) getSelectionBounds(sx, sy, sw, sh);
	else if (sel > 1 && sel < 9) getSelectionCoordinates(xs, ys);
	Overlay.remove;
	hyper = is("hyperstack");
	Stack.getDimensions(w, h, nc, nz, nt);
	last = nSlices;
	if (hyper) last = nt;
	r = exodfRadius;
	n = 0;
	for (i = 0; i < nResults; i++) {
		x = getResult("X", i) / scale; y = getResult("Y", i) / scale; s = round(getResult("Slice", i));
		for (f = s - exodfBefore; f <= s + exodfAfter; f++) {
			if (f < 1 || f > last) continue;
			makeOval(x + 0.5 - r, y + 0.5 - r, 2 * r, 2 * r);
			Overlay.addSelection("yellow");
			if (hyper) Overlay.setPosition(0, 0, f);
			else Overlay.setPosition(f);
			n++;
		}
	}
	run("Select None");
	if (sel == 0) makeRectangle(sx, sy, sw, sh);
	else if (sel == 1) makeOval(sx, sy, sw, sh);
	else if (sel > 1 && sel < 9) makeSelection(sel, xs, ys);
	return n;
}
