//! YUV4MPEG2 (Y4M) files: the uncompressed format ffmpeg, mjpegtools and Chromium's fake camera
//! (`--use-file-for-fake-video-capture`) read and write.
//!
//! A stream is one text header line (`YUV4MPEG2 W640 H360 F30:1 Ip A1:1 C420jpeg`) and then, per
//! frame, a `FRAME` line followed by the picture as packed planes. Only 8-bit 4:2:0 is handled,
//! which is what [`I420Frame`] holds.

use std::io::{self, BufRead, BufReader, Read, Write};

use crate::{Error, I420Frame, Result};

const MAGIC: &str = "YUV4MPEG2";
/// Longest header or `FRAME` line accepted, so a stream without newlines cannot make the reader
/// buffer without end.
const MAX_LINE: usize = 4096;

/// Frames per second as a fraction (Y4M's `F` tag), e.g. 30000:1001 for NTSC rates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameRate {
    pub num: u32,
    pub den: u32,
}

impl FrameRate {
    /// A whole number of frames per second.
    pub fn fps(fps: u32) -> Self {
        Self { num: fps, den: 1 }
    }
}

/// Writes frames to a Y4M stream. The header is written with the first frame, whose size the
/// stream then keeps: Y4M has one picture size per stream, so a frame of another size is
/// refused (a recorder starts a new file when the sender changes size).
pub struct Y4mWriter<W: Write> {
    out: W,
    frame_rate: FrameRate,
    size: Option<(u32, u32)>,
}

impl<W: Write> Y4mWriter<W> {
    pub fn new(out: W, frame_rate: FrameRate) -> Result<Self> {
        if frame_rate.num == 0 || frame_rate.den == 0 {
            return Err(Error::InvalidArgument("frame rate must be above zero"));
        }
        Ok(Self {
            out,
            frame_rate,
            size: None,
        })
    }

    /// Appends one frame (and, before the first, the stream header).
    pub fn write_frame(&mut self, frame: &I420Frame) -> Result<()> {
        let size = (frame.width(), frame.height());
        match self.size {
            None => {
                let FrameRate { num, den } = self.frame_rate;
                // `C420jpeg` is ffmpeg's name for plain yuv420p, the most widely read spelling.
                writeln!(
                    self.out,
                    "{MAGIC} W{} H{} F{num}:{den} Ip A1:1 C420jpeg",
                    size.0, size.1
                )?;
                self.size = Some(size);
            }
            Some(stream) if stream != size => {
                return Err(Error::InvalidArgument(
                    "a Y4M stream keeps the size of its first frame",
                ));
            }
            Some(_) => {}
        }
        self.out.write_all(b"FRAME\n")?;
        self.out.write_all(frame.as_packed())?;
        Ok(())
    }

    pub fn flush(&mut self) -> Result<()> {
        self.out.flush()?;
        Ok(())
    }

    /// The underlying writer (not flushed).
    pub fn into_inner(self) -> W {
        self.out
    }
}

/// Reads frames from a Y4M stream of 8-bit 4:2:0 pictures.
pub struct Y4mReader<R: Read> {
    input: BufReader<R>,
    width: u32,
    height: u32,
    frame_rate: Option<FrameRate>,
}

impl<R: Read> Y4mReader<R> {
    /// Reads and checks the stream header.
    pub fn new(input: R) -> Result<Self> {
        let mut input = BufReader::new(input);
        let line = read_line(&mut input)?.ok_or_else(|| malformed("empty stream"))?;
        let mut words = line.split(' ').filter(|w| !w.is_empty());
        if words.next() != Some(MAGIC) {
            return Err(malformed("not a YUV4MPEG2 stream"));
        }
        let (mut width, mut height, mut frame_rate) = (None, None, None);
        for word in words {
            let mut chars = word.chars();
            let tag = chars.next();
            let value = chars.as_str();
            match tag {
                Some('W') => width = Some(parse_number(value, "width")?),
                Some('H') => height = Some(parse_number(value, "height")?),
                Some('F') => {
                    let (num, den) = value
                        .split_once(':')
                        .ok_or_else(|| malformed("frame rate is not N:D"))?;
                    let rate = FrameRate {
                        num: parse_number(num, "frame rate")?,
                        den: parse_number(den, "frame rate")?,
                    };
                    frame_rate = (rate.num != 0 && rate.den != 0).then_some(rate);
                }
                // All 8-bit 4:2:0 layouts; they differ only in where chroma samples sit.
                Some('C') if matches!(value, "420jpeg" | "420" | "420paldv" | "420mpeg2") => {}
                Some('C') => {
                    return Err(malformed(&format!(
                        "colour space {value} is not 8-bit 4:2:0"
                    )));
                }
                // Interlacing, aspect ratio and extensions do not change the sample layout;
                // the format says to ignore tags a reader does not know.
                _ => {}
            }
        }
        let (width, height) = width
            .zip(height)
            .ok_or_else(|| malformed("header lacks W or H"))?;
        I420Frame::packed_len(width, height)?;
        Ok(Self {
            input,
            width,
            height,
            frame_rate,
        })
    }

    pub fn width(&self) -> u32 {
        self.width
    }

    pub fn height(&self) -> u32 {
        self.height
    }

    /// The header's frame rate, if it gave a usable one.
    pub fn frame_rate(&self) -> Option<FrameRate> {
        self.frame_rate
    }

    /// The next frame, or `None` at the end of the stream. A stream cut inside a frame is an
    /// error.
    pub fn read_frame(&mut self) -> Result<Option<I420Frame>> {
        let Some(line) = read_line(&mut self.input)? else {
            return Ok(None);
        };
        if line != "FRAME" && !line.starts_with("FRAME ") {
            return Err(malformed("expected a FRAME line"));
        }
        let len = I420Frame::packed_len(self.width, self.height)?;
        let mut data = vec![0; len];
        self.input.read_exact(&mut data).map_err(|e| {
            if e.kind() == io::ErrorKind::UnexpectedEof {
                malformed("stream ends inside a frame")
            } else {
                Error::Io(e)
            }
        })?;
        I420Frame::from_packed(self.width, self.height, data).map(Some)
    }
}

fn malformed(what: &str) -> Error {
    Error::Y4m(what.to_owned())
}

fn parse_number(text: &str, what: &str) -> Result<u32> {
    text.parse()
        .map_err(|_| malformed(&format!("{what} {text:?} is not a number")))
}

/// One `\n`-terminated line without its newline, or `None` at a clean end of stream.
fn read_line(input: &mut impl BufRead) -> Result<Option<String>> {
    let mut line = Vec::new();
    loop {
        let buf = input.fill_buf()?;
        if buf.is_empty() {
            return if line.is_empty() {
                Ok(None)
            } else {
                Err(malformed("stream ends inside a line"))
            };
        }
        let (taken, done) = match buf.iter().position(|&b| b == b'\n') {
            Some(end) => (end + 1, true),
            None => (buf.len(), false),
        };
        line.extend_from_slice(&buf[..taken - usize::from(done)]);
        input.consume(taken);
        if line.len() > MAX_LINE {
            return Err(malformed("line too long"));
        }
        if done {
            return String::from_utf8(line)
                .map(Some)
                .map_err(|_| malformed("line is not text"));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frames() -> Vec<I420Frame> {
        // Odd size, distinct bytes per plane and per frame.
        (0..3u8)
            .map(|i| {
                let len = I420Frame::packed_len(5, 3).unwrap();
                let data = (0..len).map(|b| (b as u8).wrapping_mul(7) ^ i).collect();
                I420Frame::from_packed(5, 3, data).unwrap()
            })
            .collect()
    }

    #[test]
    fn writes_the_documented_header() {
        let mut writer = Y4mWriter::new(Vec::new(), FrameRate::fps(30)).unwrap();
        writer.write_frame(&I420Frame::new(4, 2).unwrap()).unwrap();
        let bytes = writer.into_inner();
        let header = b"YUV4MPEG2 W4 H2 F30:1 Ip A1:1 C420jpeg\nFRAME\n";
        assert_eq!(&bytes[..header.len()], header);
        assert_eq!(bytes.len(), header.len() + 8 + 2 + 2);
    }

    #[test]
    fn reads_headers_other_writers_make() {
        let mut stream =
            b"YUV4MPEG2 C420mpeg2 W2 H2 F30000:1001 It A0:0 XYSCSS=420MPEG2\n".to_vec();
        stream.extend_from_slice(b"FRAME Ixyz\n");
        stream.extend_from_slice(&[1, 2, 3, 4, 5, 6]);
        let mut reader = Y4mReader::new(&stream[..]).unwrap();
        assert_eq!((reader.width(), reader.height()), (2, 2));
        assert_eq!(
            reader.frame_rate(),
            Some(FrameRate {
                num: 30000,
                den: 1001
            })
        );
        let frame = reader.read_frame().unwrap().unwrap();
        assert_eq!(frame.as_packed(), &[1, 2, 3, 4, 5, 6]);
        assert!(reader.read_frame().unwrap().is_none());
    }

    #[test]
    fn refuses_what_it_cannot_hold() {
        for header in [
            &b""[..],
            b"YUV4MPEG W2 H2\n",
            b"YUV4MPEG2 W2\n",
            b"YUV4MPEG2 W2 H2 C444\n",
            b"YUV4MPEG2 W2 H2 C420p10\n",
            b"YUV4MPEG2 W0 H2\n",
            b"YUV4MPEG2 W99999999 H99999999\n",
            b"YUV4MPEG2 W2 H2 Fx\n",
            b"YUV4MPEG2 W2 H2 \xff\n",
        ] {
            assert!(Y4mReader::new(header).is_err(), "{header:?}");
        }
        // An unknown tag, even a non-ASCII one, is skipped as the format says.
        assert!(Y4mReader::new("YUV4MPEG2 W2 H2 \u{e9}x\n".as_bytes()).is_ok());
        let long = [b'Y'; MAX_LINE + 10];
        assert!(matches!(Y4mReader::new(&long[..]), Err(Error::Y4m(_))));
    }

    #[test]
    fn truncated_or_misframed_frames_are_errors() {
        let mut stream = b"YUV4MPEG2 W2 H2\nFRAME\n".to_vec();
        stream.extend_from_slice(&[1, 2, 3]);
        let mut reader = Y4mReader::new(&stream[..]).unwrap();
        assert!(matches!(reader.read_frame(), Err(Error::Y4m(_))));

        let stream = b"YUV4MPEG2 W2 H2\nFRAMES\n\0\0\0\0\0\0".to_vec();
        let mut reader = Y4mReader::new(&stream[..]).unwrap();
        assert!(matches!(reader.read_frame(), Err(Error::Y4m(_))));
    }

    #[test]
    fn writer_keeps_one_size_per_stream() {
        let mut writer = Y4mWriter::new(Vec::new(), FrameRate::fps(25)).unwrap();
        writer.write_frame(&I420Frame::new(4, 4).unwrap()).unwrap();
        assert!(matches!(
            writer.write_frame(&I420Frame::new(8, 4).unwrap()),
            Err(Error::InvalidArgument(_))
        ));
        assert!(Y4mWriter::new(Vec::new(), FrameRate { num: 30, den: 0 }).is_err());
    }

    #[test]
    fn round_trip_is_byte_exact() {
        let frames = frames();
        let mut writer = Y4mWriter::new(Vec::new(), FrameRate { num: 15, den: 2 }).unwrap();
        for frame in &frames {
            writer.write_frame(frame).unwrap();
        }
        let bytes = writer.into_inner();

        let mut reader = Y4mReader::new(&bytes[..]).unwrap();
        let rate = reader.frame_rate().unwrap();
        let mut again = Y4mWriter::new(Vec::new(), rate).unwrap();
        let mut read = Vec::new();
        while let Some(frame) = reader.read_frame().unwrap() {
            again.write_frame(&frame).unwrap();
            read.push(frame);
        }
        assert_eq!(read, frames);
        assert_eq!(again.into_inner(), bytes);
    }
}
