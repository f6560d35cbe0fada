//! The geometry of a 2-D convolution on a fixed input size, and why a layer cannot run on
//! edgenet's kernels.

/// Spatial geometry of a 2-D convolution on a fixed input size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Geometry {
    /// Input channels.
    pub cin: usize,
    /// Input height and width.
    pub h: usize,
    /// Input width.
    pub w: usize,
    /// Kernel height and width.
    pub kh: usize,
    /// Kernel width.
    pub kw: usize,
    /// Strides (height, width).
    pub stride: (usize, usize),
    /// Dilations (height, width).
    pub dilation: (usize, usize),
    /// Padding top, left, bottom, right.
    pub pads: [usize; 4],
}

impl Geometry {
    /// The same convolution with each stride at most what can still reach a second output
    /// position: a stride beyond that gives one output row (or column), read from the window
    /// at the origin whatever the stride, so the output is unchanged. Kernels size their
    /// buffers by the stride (column phases), and a stride of 2³⁰ in a file would otherwise
    /// ask for gigabytes.
    pub fn with_strides_clamped(mut self) -> Geometry {
        let span_h = self.dilation.0 * self.kh.saturating_sub(1) + 1;
        let span_w = self.dilation.1 * self.kw.saturating_sub(1) + 1;
        let ph = self.h + self.pads[0] + self.pads[2];
        let pw = self.w + self.pads[1] + self.pads[3];
        if ph >= span_h {
            self.stride.0 = self.stride.0.min(ph - span_h + 1);
        }
        if pw >= span_w {
            self.stride.1 = self.stride.1.min(pw - span_w + 1);
        }
        self
    }

    /// Output height and width, or `None` when the kernel does not fit.
    pub fn output_hw(&self) -> Option<(usize, usize)> {
        let span_h = self.dilation.0 * (self.kh.checked_sub(1)?) + 1;
        let span_w = self.dilation.1 * (self.kw.checked_sub(1)?) + 1;
        let ph = self.h + self.pads[0] + self.pads[2];
        let pw = self.w + self.pads[1] + self.pads[3];
        if ph < span_h || pw < span_w || self.stride.0 == 0 || self.stride.1 == 0 {
            return None;
        }
        Some(((ph - span_h) / self.stride.0 + 1, (pw - span_w) / self.stride.1 + 1))
    }

    pub(crate) fn is_pointwise(&self) -> bool {
        self.kh == 1 && self.kw == 1 && self.stride == (1, 1) && self.pads == [0; 4]
    }
}

/// Why a convolution cannot use these kernels.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unsupported(pub String);
