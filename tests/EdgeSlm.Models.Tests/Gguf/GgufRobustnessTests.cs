using System.Buffers;
using System.Text;
using EdgeSlm.Models.Gguf;

namespace EdgeSlm.Models.Tests.Gguf;

public sealed class GgufRobustnessTests
{
    [Theory]
    [InlineData(1UL << 62)]               // 2^64 bytes: wraps to 0
    [InlineData(3456663128289164320UL)]   // wraps to a negative size, which passed the bounds check (found by afl)
    public void Gguf_tensor_whose_byte_size_overflows_64_bits_is_rejected(ulong elements)
    {
        string path = Path.Combine(Path.GetTempPath(), $"edgeslm-overflow-{Guid.NewGuid():N}.gguf");
        using (var writer = new BinaryWriter(File.Create(path)))
        {
            writer.Write(GgufFile.Magic);
            writer.Write(3u);
            writer.Write(1UL); // tensors
            writer.Write(0UL); // metadata
            writer.Write(1UL);
            writer.Write((byte)'t');
            writer.Write(1u);  // dimensions
            writer.Write(elements);
            writer.Write(0u);  // f32
            writer.Write(0UL); // offset
            writer.Write(new byte[64]);
        }
        try
        {
            var e = Assert.Throws<GgufFormatException>(() => GgufFile.Open(path).Dispose());

            Assert.Contains("tensor 't'", e.Message);
        }
        finally
        {
            File.Delete(path);
        }
    }
}
