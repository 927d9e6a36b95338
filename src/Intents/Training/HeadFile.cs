using EdgeSlm.Intents.Classifiers;
using EdgeSlm.Intents.Tagging;

namespace EdgeSlm.Intents.Training;

/// <summary>
/// A trained head on disk: <c>"EDGEINTH"</c>, version, the threshold, the lexical weight, the embedding
/// classifier's own checked format, then a byte saying whether a lexical classifier follows in its checked format,
/// a byte saying whether a <see cref="SlotTagger"/> follows in its checked format, and a byte saying whether the
/// distance threshold (float64) and a <see cref="TrainingDistance"/> in its checked format follow (format history:
/// docs/accuracy.md). Written to a temporary file and renamed, so a crash never leaves half a head behind.
/// </summary>
public static class HeadFile
{
    private static ReadOnlySpan<byte> Magic => "EDGEINTH"u8;
    private const int Version = 3;

    public static bool TryRead(string path, [System.Diagnostics.CodeAnalysis.NotNullWhen(true)] out IntentHead? head, out double threshold) =>
        TryRead(path, out head, out threshold, out _);

    /// <summary>Reads a head and its slot tagger (null when it has none); false when the file is missing or damaged.</summary>
    public static bool TryRead(string path, [System.Diagnostics.CodeAnalysis.NotNullWhen(true)] out IntentHead? head, out double threshold, out SlotTagger? tagger)
    {
        bool read = TryRead(path, out TrainedHead? trained);
        (head, threshold, tagger) = (trained?.Head, trained?.Threshold ?? 0, trained?.Tagger);
        return read;
    }

    /// <summary>Reads everything a trained head holds (its L2 and embedding time are not kept: 0); false when the file is missing or damaged.</summary>
    public static bool TryRead(string path, [System.Diagnostics.CodeAnalysis.NotNullWhen(true)] out TrainedHead? trained)
    {
        trained = null;
        double threshold;
        try
        {
            using FileStream stream = File.OpenRead(path);
            using var reader = new BinaryReader(stream, System.Text.Encoding.UTF8, leaveOpen: true);
            if (!reader.ReadBytes(Magic.Length).AsSpan().SequenceEqual(Magic) || reader.ReadInt32() != Version)
            {
                return false;
            }
            threshold = reader.ReadDouble();
            float lexicalWeight = reader.ReadSingle();
            if (!(threshold is >= 0 and <= 1) || !(lexicalWeight >= 0 && float.IsFinite(lexicalWeight)))
            {
                return false;
            }
            SoftmaxClassifier embedding = SoftmaxClassifier.Read(stream);
            LexicalClassifier? lexical = reader.ReadBoolean() ? LexicalClassifier.Read(stream) : null;
            SlotTagger? tagger = reader.ReadBoolean() ? SlotTagger.Read(stream) : null;
            TrainingDistance? distance = null;
            double distanceThreshold = double.PositiveInfinity;
            if (reader.ReadBoolean())
            {
                distanceThreshold = reader.ReadDouble();
                if (!(distanceThreshold >= 0)) return false;
                distance = TrainingDistance.Read(stream);
            }
            trained = new TrainedHead(new IntentHead(embedding, lexical, lexicalWeight), threshold, 0, 0, tagger, distance, distanceThreshold);
            return true;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or InvalidDataException or EndOfStreamException or ArgumentException)
        {
            // Missing or damaged: train again (and replace it).
            return false;
        }
    }

    public static bool TryWrite(string path, IntentHead head, double threshold, SlotTagger? tagger = null) =>
        TryWrite(path, new TrainedHead(head, threshold, 0, 0, tagger));

    public static bool TryWrite(string path, TrainedHead trained)
    {
        (IntentHead head, double threshold, SlotTagger? tagger) = (trained.Head, trained.Threshold, trained.Tagger);
        string temporary = $"{path}.{Guid.NewGuid():N}.tmp"; // unique: two trainings of the same head may race
        try
        {
            Directory.CreateDirectory(Path.GetDirectoryName(path)!);
            using (FileStream stream = File.Create(temporary))
            {
                using (var writer = new BinaryWriter(stream, System.Text.Encoding.UTF8, leaveOpen: true))
                {
                    writer.Write(Magic);
                    writer.Write(Version);
                    writer.Write(threshold);
                    writer.Write(head.LexicalWeight);
                }
                head.Embedding.Write(stream);
                stream.WriteByte(head.Lexical is null ? (byte)0 : (byte)1);
                head.Lexical?.Write(stream);
                stream.WriteByte(tagger is null ? (byte)0 : (byte)1);
                tagger?.Write(stream);
                stream.WriteByte(trained.Distance is null ? (byte)0 : (byte)1);
                if (trained.Distance is not null)
                {
                    stream.Write(BitConverter.GetBytes(trained.DistanceThreshold));
                    trained.Distance.Write(stream);
                }
            }
            File.Move(temporary, path, overwrite: true);
            return true;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            try { File.Delete(temporary); } catch (Exception d) when (d is IOException or UnauthorizedAccessException) { }
            return false;
        }
    }

}
