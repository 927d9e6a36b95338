using System.Buffers.Binary;
using System.Security.Cryptography;
using System.Text;

namespace EdgeSlm.Intents.Classifiers;

/// <summary>
/// Reads a head file field by field while hashing what it reads, for formats that end in a SHA-256 of everything
/// before it. Every failure is an <see cref="InvalidDataException"/> naming the file kind and the field. The static
/// helpers write the same fields.
/// </summary>
internal sealed class ChecksummedReader(Stream stream, string fileKind) : IDisposable
{
    private static readonly UTF8Encoding StrictUtf8 = new(encoderShouldEmitUTF8Identifier: false, throwOnInvalidBytes: true);
    private readonly IncrementalHash _hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);

    public string FileKind => fileKind;

    public void Read(Span<byte> destination, string what)
    {
        if (stream.ReadAtLeast(destination, destination.Length, throwOnEndOfStream: false) < destination.Length)
        {
            throw new InvalidDataException($"{fileKind} is truncated: it ends inside the {what}");
        }
        _hash.AppendData(destination);
    }

    /// <summary>Reads and checks the 8-byte magic and the format version that open every head format.</summary>
    public void Header(ReadOnlySpan<byte> magic, uint version)
    {
        Span<byte> read = stackalloc byte[magic.Length];
        Read(read, "magic");
        if (!read.SequenceEqual(magic))
        {
            throw new InvalidDataException($"{fileKind} has the wrong magic: it starts with {Convert.ToHexString(read)}, not \"{Encoding.ASCII.GetString(magic)}\"");
        }
        uint found = UInt32("version");
        if (found != version)
        {
            throw new InvalidDataException($"{fileKind} version {found} is not supported (this build reads version {version})");
        }
    }

    /// <summary><paramref name="count"/> names as <see cref="Name"/> reads them, each different from the others.</summary>
    public string[] DistinctNames(int count, int maximumBytes, string what)
    {
        var names = new string[count];
        var seen = new HashSet<string>(StringComparer.Ordinal);
        for (int i = 0; i < count; i++)
        {
            names[i] = Name(maximumBytes, $"{what} {i}");
            if (!seen.Add(names[i]))
            {
                throw new InvalidDataException($"{fileKind}: {what} '{names[i]}' appears twice");
            }
        }
        return names;
    }

    public uint UInt32(string what)
    {
        Span<byte> word = stackalloc byte[4];
        Read(word, what);
        return BinaryPrimitives.ReadUInt32LittleEndian(word);
    }

    /// <summary>A u16 byte length (1 to <paramref name="maximumBytes"/>) followed by that many bytes of strict UTF-8.</summary>
    public string Name(int maximumBytes, string what)
    {
        Span<byte> length = stackalloc byte[2];
        Read(length, $"length of {what}");
        int bytes = BinaryPrimitives.ReadUInt16LittleEndian(length);
        if (bytes is 0 || bytes > maximumBytes)
        {
            throw new InvalidDataException($"{fileKind}: {what} is {bytes} bytes long; 1 to {maximumBytes} are allowed");
        }
        var text = new byte[bytes];
        Read(text, what);
        try
        {
            return StrictUtf8.GetString(text);
        }
        catch (DecoderFallbackException)
        {
            throw new InvalidDataException($"{fileKind}: {what} is not valid UTF-8");
        }
    }

    public float[] Floats(int count, string what)
    {
        var bytes = new byte[count * sizeof(float)];
        Read(bytes, what);
        var values = new float[count];
        for (int i = 0; i < count; i++)
        {
            values[i] = BinaryPrimitives.ReadSingleLittleEndian(bytes.AsSpan(i * sizeof(float)));
        }
        return values;
    }

    /// <summary>Reads the stored SHA-256 and compares it with the hash of everything read so far.</summary>
    public void VerifyChecksum()
    {
        byte[] expected = _hash.GetHashAndReset();
        var stored = new byte[expected.Length];
        if (stream.ReadAtLeast(stored, stored.Length, throwOnEndOfStream: false) < stored.Length)
        {
            throw new InvalidDataException($"{fileKind} is truncated: it ends inside the checksum");
        }
        if (!stored.AsSpan().SequenceEqual(expected))
        {
            throw new InvalidDataException($"{fileKind} is corrupt: its SHA-256 checksum does not match its contents");
        }
    }

    /// <summary>Appends the SHA-256 of everything in <paramref name="content"/> to it and copies it all to <paramref name="destination"/>.</summary>
    public static void WriteWithChecksum(MemoryStream content, Stream destination)
    {
        content.Write(SHA256.HashData(content.GetBuffer().AsSpan(0, (int)content.Length)));
        content.Position = 0;
        content.CopyTo(destination);
    }

    public static void WriteUInt32(Stream destination, uint value)
    {
        Span<byte> word = stackalloc byte[4];
        BinaryPrimitives.WriteUInt32LittleEndian(word, value);
        destination.Write(word);
    }

    public static void WriteFloats(Stream destination, ReadOnlySpan<float> values)
    {
        var bytes = new byte[values.Length * sizeof(float)];
        for (int i = 0; i < values.Length; i++)
        {
            BinaryPrimitives.WriteSingleLittleEndian(bytes.AsSpan(i * sizeof(float)), values[i]);
        }
        destination.Write(bytes);
    }

    /// <summary>Writes a name as <see cref="Name"/> reads it.</summary>
    public static void WriteName(Stream destination, string name, int maximumBytes, string fileKind)
    {
        byte[] bytes = Encoding.UTF8.GetBytes(name);
        if (bytes.Length is 0 || bytes.Length > maximumBytes)
        {
            throw new InvalidOperationException($"'{name}' has {bytes.Length} UTF-8 bytes; a {fileKind} holds names of 1 to {maximumBytes}");
        }
        Span<byte> length = stackalloc byte[2];
        BinaryPrimitives.WriteUInt16LittleEndian(length, (ushort)bytes.Length);
        destination.Write(length);
        destination.Write(bytes);
    }

    public void Dispose() => _hash.Dispose();
}
