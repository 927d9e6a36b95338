using System.Runtime.InteropServices;
using EdgeSlm.Kernels.Formats;
using EdgeSlm.Kernels.Quantization;

namespace EdgeSlm.Kernels.MatMul;

/// <summary>
/// A weight matrix W[rows × columns] of a block-quantized type, row after row, as GGUF stores it. Either a view
/// of memory someone else owns (a memory-mapped model file, which must outlive the view) or memory of its own.
/// </summary>
public sealed unsafe class QuantizedMatrix : IDisposable
{
    private byte* _data;
    private readonly bool _ownsMemory;

    private QuantizedMatrix(QuantType type, int rows, int columns, byte* data, bool ownsMemory)
    {
        Type = type;
        Rows = rows;
        Columns = columns;
        RowBytes = QuantTypeTraits.Of(type).RowBytes(columns);
        _data = data;
        _ownsMemory = ownsMemory;
    }

    public QuantType Type { get; }
    public int Rows { get; }
    public int Columns { get; }
    public long RowBytes { get; }
    public long TotalBytes => RowBytes * Rows;

    public ReadOnlySpan<byte> Bytes => new(Data, checked((int)TotalBytes));

    internal byte* Data => _data != null ? _data : throw new ObjectDisposedException(nameof(QuantizedMatrix));

    /// <summary>Quantizes row-major floats with ggml's reference quantizer into memory this matrix owns.</summary>
    public static QuantizedMatrix Quantize(QuantType type, ReadOnlySpan<float> values, int rows, int columns)
    {
        Validate(type, rows, columns);
        if (values.Length != (long)rows * columns)
        {
            throw new ArgumentException($"{values.Length} values cannot fill a {rows} x {columns} matrix.", nameof(values));
        }
        long rowBytes = QuantTypeTraits.Of(type).RowBytes(columns);
        byte* data = (byte*)NativeMemory.AlignedAlloc((nuint)(rowBytes * rows), 64);
        var matrix = new QuantizedMatrix(type, rows, columns, data, ownsMemory: true);
        for (int r = 0; r < rows; r++)
        {
            ReferenceQuantizer.Quantize(type, values.Slice(r * columns, columns), new Span<byte>(data + r * rowBytes, (int)rowBytes));
        }
        return matrix;
    }

    /// <summary>Copies already-quantized blocks into memory this matrix owns.</summary>
    public static QuantizedMatrix Copy(QuantType type, ReadOnlySpan<byte> blocks, int rows, int columns)
    {
        Validate(type, rows, columns);
        long bytes = QuantTypeTraits.Of(type).RowBytes(columns) * rows;
        if (blocks.Length != bytes)
        {
            throw new ArgumentException($"A {rows} x {columns} {QuantTypeTraits.Of(type).Name} matrix takes {bytes} bytes, not {blocks.Length}.", nameof(blocks));
        }
        byte* data = (byte*)NativeMemory.AlignedAlloc((nuint)bytes, 64);
        blocks.CopyTo(new Span<byte>(data, blocks.Length));
        return new QuantizedMatrix(type, rows, columns, data, ownsMemory: true);
    }

    /// <summary>A view of blocks in memory the caller owns and keeps alive (e.g. a memory-mapped GGUF tensor).</summary>
    public static QuantizedMatrix View(QuantType type, int rows, int columns, byte* data, long length)
    {
        Validate(type, rows, columns);
        long bytes = QuantTypeTraits.Of(type).RowBytes(columns) * rows;
        if (data == null || length < bytes)
        {
            throw new ArgumentException($"A {rows} x {columns} {QuantTypeTraits.Of(type).Name} matrix takes {bytes} bytes; the view has {length}.", nameof(length));
        }
        return new QuantizedMatrix(type, rows, columns, data, ownsMemory: false);
    }

    private static void Validate(QuantType type, int rows, int columns)
    {
        QuantTypeTraits traits = QuantTypeTraits.Of(type);
        if (!traits.IsQuantized)
        {
            throw new NotSupportedException($"The int8 kernels multiply block-quantized weights; {traits.Name} is not one.");
        }
        if (rows < 1 || columns < 1)
        {
            throw new ArgumentOutOfRangeException(nameof(rows), $"A matrix needs at least one row and column (got {rows} x {columns}).");
        }
        if (columns % traits.BlockElements != 0)
        {
            throw new ArgumentException($"A {traits.Name} matrix needs a multiple of {traits.BlockElements} columns, not {columns}.", nameof(columns));
        }
    }

    public void Dispose()
    {
        if (_ownsMemory && _data != null)
        {
            NativeMemory.AlignedFree(_data);
        }
        _data = null;
    }
}
